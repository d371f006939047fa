package pgwire

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/toolgate/toolgate/broker"
)

// classCacheSize bounds the classification cache; a full cache is emptied.
const classCacheSize = 4096

// classCache remembers how single statements classify, keyed by their
// token stream from the PostgreSQL lexer with the literal constants that
// are plain operands removed. `SELECT abalance FROM pgbench_accounts WHERE
// aid = 12345` and `... WHERE aid = 678` share one entry; the lexer costs a
// tenth of a full parse. A statement the cache cannot key (see key) is
// always parsed.
//
// Soundness: the parser only sees tokens, so two statements whose token
// streams are equal except for the value of some constants parse to trees
// of the same shape; the key removes a constant only where the grammar
// turns it into a plain A_Const operand of an expression (right after a
// comparison or arithmetic operator, in a SELECT/INSERT/UPDATE/DELETE/
// WITH/VALUES/TABLE statement), so no grammar action inspects its value
// and the classification (class, command, tables, functions) is the same.
// TestClassCacheMatchesParse checks this against the full parse.
type classCache struct {
	mu sync.RWMutex
	m  map[string]broker.Statement // Text is empty
}

func newClassCache() *classCache {
	return &classCache{m: map[string]broker.Statement{}}
}

// classify is Classify with the cache in front of it.
func (c *classCache) classify(sql string) []broker.Statement {
	key, text, ok := cacheKey(sql)
	if !ok {
		return Classify(sql)
	}
	c.mu.RLock()
	st, hit := c.m[key]
	c.mu.RUnlock()
	if hit {
		st.Text = text
		st.Tables, st.Functions = slices.Clone(st.Tables), slices.Clone(st.Functions)
		return []broker.Statement{st}
	}
	sts := Classify(sql)
	if len(sts) != 1 || sts[0].Unclassified != "" || sts[0].Text != text {
		return sts
	}
	st = sts[0]
	st.Text = ""
	st.Tables, st.Functions = slices.Clone(st.Tables), slices.Clone(st.Functions)
	c.mu.Lock()
	if len(c.m) >= classCacheSize {
		clear(c.m)
	}
	c.m[key] = st
	c.mu.Unlock()
	return sts
}

// Scan token numbers (pg_query.Token) the key treats specially.
const (
	tokSemicolon = int32(pg_query.Token_ASCII_59)
	tokLParen    = int32(pg_query.Token_ASCII_40)
)

// cacheKeyFirst are the statements whose constants the key may remove.
var cacheKeyFirst = map[int32]bool{
	int32(pg_query.Token_SELECT): true, int32(pg_query.Token_INSERT): true, int32(pg_query.Token_UPDATE): true,
	int32(pg_query.Token_DELETE_P): true, int32(pg_query.Token_WITH): true, int32(pg_query.Token_VALUES): true,
	int32(pg_query.Token_TABLE): true, tokLParen: true,
}

// operandAfter are the operators after which a constant is a plain operand.
var operandAfter = map[int32]bool{
	int32(pg_query.Token_ASCII_61):    true, // =
	int32(pg_query.Token_ASCII_60):    true, // <
	int32(pg_query.Token_ASCII_62):    true, // >
	int32(pg_query.Token_ASCII_43):    true, // +
	int32(pg_query.Token_ASCII_45):    true, // -
	int32(pg_query.Token_ASCII_42):    true, // *
	int32(pg_query.Token_ASCII_47):    true, // /
	int32(pg_query.Token_ASCII_37):    true, // %
	int32(pg_query.Token_LESS_EQUALS): true, int32(pg_query.Token_GREATER_EQUALS): true, int32(pg_query.Token_NOT_EQUALS): true,
}

// constants are the literal tokens the key may remove.
var constants = map[int32]bool{
	int32(pg_query.Token_ICONST): true, int32(pg_query.Token_FCONST): true, int32(pg_query.Token_SCONST): true,
}

// refuseKey are tokens whose statements are always parsed: comments (the
// statement text would start elsewhere) and Unicode escapes (the parser
// rewrites them with a value it checks).
var refuseKey = map[int32]bool{
	int32(pg_query.Token_SQL_COMMENT): true, int32(pg_query.Token_C_COMMENT): true,
	int32(pg_query.Token_UIDENT): true, int32(pg_query.Token_USCONST): true, int32(pg_query.Token_UESCAPE): true,
}

// cacheKey scans sql with the PostgreSQL lexer and returns the cache key
// and the statement text Classify would give, or false when the statement
// must be parsed: the lexer failed, it is not one statement of a kind the
// cache handles, or it holds a token listed in refuseKey.
func cacheKey(sql string) (key, text string, ok bool) {
	pb, err := parser.ScanToProtobuf(sql)
	if err != nil {
		return "", "", false
	}
	var b []byte
	prev, n, semi := int32(-1), 0, -1
	for len(pb) > 0 {
		num, typ, l := protowire.ConsumeTag(pb)
		if l < 0 {
			return "", "", false
		}
		pb = pb[l:]
		if num != 2 || typ != protowire.BytesType { // not a token (the version)
			if l = protowire.ConsumeFieldValue(num, typ, pb); l < 0 {
				return "", "", false
			}
			pb = pb[l:]
			continue
		}
		msg, l := protowire.ConsumeBytes(pb)
		if l < 0 {
			return "", "", false
		}
		pb = pb[l:]
		start, end, tok, ok := scanToken(msg)
		if !ok || start < 0 || end < start || end > len(sql) || refuseKey[tok] || semi >= 0 {
			return "", "", false
		}
		if n == 0 && !cacheKeyFirst[tok] {
			return "", "", false
		}
		n++
		if tok == tokSemicolon {
			semi = start
		}
		b = binary.AppendUvarint(b, uint64(tok))
		if !(constants[tok] && operandAfter[prev]) {
			b = binary.AppendUvarint(b, uint64(end-start))
			b = append(b, sql[start:end]...)
		}
		prev = tok
	}
	if n == 0 {
		return "", "", false
	}
	text = sql
	if semi >= 0 {
		text = strings.TrimSpace(sql[:semi])
	}
	return string(b), text, true
}

// scanToken decodes one pg_query ScanToken message (start, end, token).
func scanToken(msg []byte) (start, end int, tok int32, ok bool) {
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return 0, 0, 0, false
		}
		msg = msg[l:]
		if typ != protowire.VarintType {
			if l = protowire.ConsumeFieldValue(num, typ, msg); l < 0 {
				return 0, 0, 0, false
			}
			msg = msg[l:]
			continue
		}
		v, l := protowire.ConsumeVarint(msg)
		if l < 0 {
			return 0, 0, 0, false
		}
		msg = msg[l:]
		switch num {
		case 1:
			start = int(int32(v))
		case 2:
			end = int(int32(v))
		case 4:
			tok = int32(v)
		}
	}
	return start, end, tok, true
}
