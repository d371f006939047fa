package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Preview images: which state of the affected rows a preview's sample shows.
const (
	// ImageAfter is the rows as the call would leave them (INSERT, UPDATE).
	ImageAfter = "after"
	// ImageBefore is the rows as they are before the call (DELETE, a
	// declared preview query or request).
	ImageBefore = "before"
)

// Preview is what a call would change, found without changing anything: a
// held SQL write run in a transaction that is always rolled back, or a
// tool's declared preview query or request.
type Preview struct {
	// RowsAffected is how many rows the call would change; -1 when it is
	// unknown (an HTTP preview request).
	RowsAffected int64 `json:"rows_affected"`
	// Sample is a JSON array: the affected rows (at most the preview's
	// limit), or for an HTTP tool one element, the preview response body.
	// Connectors return it unmasked; the broker masks it with the tool's
	// rules (Masked) before anyone sees it. It is null when only the count
	// is known (see Note).
	Sample json.RawMessage `json:"sample"`
	// Truncated is true when more rows were affected than the sample holds.
	Truncated bool `json:"truncated"`
	// Image is ImageAfter or ImageBefore; "" when there is no sample.
	Image string `json:"image,omitempty"`
	// Note says, in one sentence safe to show, what the preview could not
	// show (e.g. only the count for a MERGE before PostgreSQL 17).
	Note string `json:"note,omitempty"`
	// Hash is the SHA-256 (hex) of the canonical preview (Sum), so an
	// approval can bind to the effect its approvers saw. Connectors leave
	// it empty; Masked sets it over the masked preview, so the stored hash
	// is never an oracle for a masked value.
	Hash string `json:"hash,omitempty"`
}

// Sum is the SHA-256 (hex) of the preview's canonical form: the JSON
// object {"rows_affected","sample","truncated","image","note"} in that
// order, with the sample compacted. Hash is not part of it.
func (p Preview) Sum() string {
	var sample bytes.Buffer
	if len(bytes.TrimSpace(p.Sample)) == 0 || json.Compact(&sample, p.Sample) != nil {
		sample.Reset()
		sample.WriteString("null")
	}
	var b bytes.Buffer
	b.WriteString(`{"rows_affected":`)
	b.WriteString(strconv.FormatInt(p.RowsAffected, 10))
	b.WriteString(`,"sample":`)
	b.Write(sample.Bytes())
	b.WriteString(`,"truncated":`)
	b.WriteString(strconv.FormatBool(p.Truncated))
	b.WriteString(`,"image":`)
	img, _ := json.Marshal(p.Image)
	b.Write(img)
	b.WriteString(`,"note":`)
	note, _ := json.Marshal(p.Note)
	b.Write(note)
	b.WriteByte('}')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// Masked returns p with its sample masked and its Hash set. mask masks a
// result document of the tool, as its ToolMask does; the sample is
// handed to it in the shape the tool's mask rules address: {"rows":
// sample} for an SQL operation, {"body": element} for an HTTP one.
func (p Preview) Masked(op Operation, mask func(doc []byte) ([]byte, error)) (Preview, error) {
	if len(bytes.TrimSpace(p.Sample)) == 0 || bytes.Equal(bytes.TrimSpace(p.Sample), []byte("null")) {
		p.Sample = nil
		p.Hash = p.Sum()
		return p, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(p.Sample, &items); err != nil {
		return Preview{}, fmt.Errorf("preview sample is not a JSON array: %w", err)
	}
	if op.HTTP != nil {
		for i, item := range items {
			doc, err := mask(append(append([]byte(`{"body":`), item...), '}'))
			if err != nil {
				return Preview{}, err
			}
			var masked struct {
				Body json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(doc, &masked); err != nil {
				return Preview{}, fmt.Errorf("masked preview body: %w", err)
			}
			if masked.Body == nil {
				masked.Body = json.RawMessage("null")
			}
			items[i] = masked.Body
		}
		p.Sample, _ = json.Marshal(items)
	} else {
		doc, err := mask(append(append([]byte(`{"rows":`), p.Sample...), '}'))
		if err != nil {
			return Preview{}, err
		}
		var masked struct {
			Rows json.RawMessage `json:"rows"`
		}
		if err := json.Unmarshal(doc, &masked); err != nil || masked.Rows == nil {
			return Preview{}, fmt.Errorf("masked preview rows are missing: %v", err)
		}
		p.Sample = masked.Rows
	}
	p.Hash = p.Sum()
	return p, nil
}

// Tolerance is how far a matched run's row count may stray from the
// previewed count and still run: the larger of Rows (absolute) and Percent
// of the previewed count (rounded down). The zero value demands the exact
// count.
type Tolerance struct {
	Rows    int64   `json:"rows,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// Expectation is what an approved call's real run must match.
type Expectation struct {
	// RowsAffected is the previewed count; it must not be negative.
	RowsAffected int64
	Tolerance    Tolerance
}

// Allows reports whether a run that affected n rows matches e.
func (e Expectation) Allows(n int64) bool {
	if e.RowsAffected < 0 {
		return false
	}
	allowed := e.Tolerance.Rows
	if e.Tolerance.Percent > 0 {
		if p := int64(math.Floor(float64(e.RowsAffected) * e.Tolerance.Percent / 100)); p > allowed {
			allowed = p
		}
	}
	diff := n - e.RowsAffected
	if diff < 0 {
		diff = -diff
	}
	return diff <= allowed
}

// StaleError is the approval_stale refusal of a matched run that affected
// now rows where previewed were approved. The run's transaction has been
// rolled back.
func StaleError(previewed, now int64) *Error {
	return Errorf(CodeApprovalStale, "the data changed since it was approved: %s previewed, %d now; nothing was changed; ask again", rowCount(previewed), now)
}

func rowCount(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.FormatInt(n, 10) + " rows"
}

// NoPreview is the error of a preview that cannot run: code says why
// (CodePreviewUnavailable when the statement or tool cannot be previewed,
// CodeTimeout, CodeTargetError, ...), and the message reads "no preview
// available: <why>".
func NoPreview(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: "no preview available: " + fmt.Sprintf(format, args...)}
}

// PreviewPlan is how a call's effect is previewed, from its tool's
// declaration.
type PreviewPlan struct {
	// Op is what Previewer.Preview runs: the call's own SQL operation (a
	// dry run), or the tool's declared preview query or request, bound to
	// the call's arguments. The broker sets Target and Comment as for the
	// call.
	Op Operation
	// Tolerance is the declared tolerance for the matched run.
	Tolerance Tolerance
}

// PreviewPlanner is an optional ability of a ToolSpec: it says how a call
// is previewed. A tool that opts out (or has nothing to preview) answers a
// NoPreview error with CodePreviewUnavailable and the declared reason.
type PreviewPlanner interface {
	PreviewPlan(args map[string]any) (PreviewPlan, error)
}

// Previewer is an optional ability of an Executor: it runs a PreviewPlan's
// operation without changing anything and returns at most limit sample
// rows (limit ≤ 0: the connector's default). Every failure is a *Error
// whose message starts "no preview available: ".
type Previewer interface {
	Preview(ctx context.Context, op Operation, limit int) (Preview, error)
}

// ExpectingExecutor is an optional ability of an Executor: it runs op in a
// transaction and commits only when the rows it affected match want;
// otherwise it rolls back and returns StaleError (CodeApprovalStale).
type ExpectingExecutor interface {
	ExecuteExpecting(ctx context.Context, op Operation, want Expectation) (Output, error)
}
