package pgwire

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/broker"
)

// digitsMasker masks every run of 13 or more digits, as the card
// detectors do.
type digitsMasker struct{ Pipeline }

var longDigits = regexp.MustCompile(`[0-9]{13,}`)

func (digitsMasker) MaskText(s string) string {
	return longDigits.ReplaceAllStringFunc(s, func(d string) string { return strings.Repeat("*", len(d)-4) + d[len(d)-4:] })
}

// TestOwnRefusalPassesWhole: toolgate raises its refusals on the server
// (refusalSQL), and every error the server sends is masked, so a refusal
// naming an approval id whose hex holds a card-like digit run came back
// with the id masked, and the client could not approve it. The message
// toolgate raised itself passes whole, once; the same text raised by
// anyone else, or again, is masked (TestAttackForgedRefusalHint).
func TestOwnRefusalPassesWhole(t *testing.T) {
	s := &session{srv: &Server{pipe: digitsMasker{}}}
	const id = "ap_01a24111111111111111ce9f"
	refusal := broker.Errorf(broker.CodeApprovalPending, "the statement was NOT run: it is waiting for approval %s", id)
	if sql := s.refusalSQL(refusal); !strings.Contains(sql, id) {
		t.Fatalf("refusal SQL %q lacks the id", sql)
	}
	msg := "the statement was NOT run: it is waiting for approval " + id
	own := &pgproto3.ErrorResponse{Code: "42501", Message: msg, Hint: refusalHint, Where: "PL/pgSQL function inline_code_block"}
	s.tidyError(own)
	if own.Message != msg || own.Hint != "" || own.Where != "" {
		t.Fatalf("toolgate's own refusal = %+v, want its message whole and the hint and context gone", own)
	}
	again := &pgproto3.ErrorResponse{Code: "42501", Message: msg, Hint: refusalHint}
	s.tidyError(again)
	forged := &pgproto3.ErrorResponse{Code: "P0001", Message: msg}
	s.refusalSQL(refusal)
	s.tidyError(forged)
	for _, e := range []*pgproto3.ErrorResponse{again, forged} {
		if strings.Contains(e.Message, "4111111111111111") {
			t.Errorf("an error toolgate did not raise (or raised once, seen twice) passed unmasked: %q", e.Message)
		}
	}
}
