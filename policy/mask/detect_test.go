package mask

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDetectors checks every detector on positives and near misses, through
// MaskText (all detectors on, email included).
func TestDetectors(t *testing.T) {
	m := newMasker(t, Config{})
	pem := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\nabc+/=\n-----END RSA PRIVATE KEY-----"
	tests := []struct {
		name, in, want string
	}{
		// card
		{"card plain", "pay 4242424242424242 now", "pay ************4242 now"},
		{"card spaces", "card 4242 4242 4242 4242.", "card ************4242."},
		{"card dashes", "(4111-1111-1111-1111)", "(************1111)"},
		{"card amex 15", "amex 378282246310005", "amex ***********0005"},
		{"card after other digits", "qty 12 4242424242424242", "qty 12 ************4242"},
		{"card followed by group", "4242424242424242-1", "************4242-1"},
		{"card luhn failure", "order 4242424242424241", "order 4242424242424241"},
		{"card 12 digits", "id 424242424242", "id 424242424242"},
		{"card 20 digit run", "id 42424242424242424242", "id 42424242424242424242"},
		{"card glued to letters", "ref x4242424242424242", "ref x************4242"},
		{"card glued both sides", "a4242424242424242b", "a************4242b"},
		{"card glued to underscore", "id_4242424242424242_x", "id_************4242_x"},
		{"card in error text", `invalid input syntax for type integer: "x4242424242424242"`, `invalid input syntax for type integer: "x************4242"`},
		{"grouped card glued", "no.x4111-1111-1111-1111z", "no.x************1111z"},
		{"two cards glued", "42424242424242425555555555554444", "************4242************4444"},
		{"three cards glued", "a4242424242424242378282246310005" + "4111111111111111b", "a************4242***********0005************1111b"},
		{"long number that is no cards", "n 12345678901234567890123456789012", "n 12345678901234567890123456789012"},
		{"card padded with a digit", "42424242424242421", "42424242424242421"},
		{"ssn glued to letters", "ssn:x123-45-6789y", "ssn:x[REDACTED:ssn]y"},
		{"ssn followed by digit", "123-45-67891", "123-45-67891"},
		{"card negative", "-4242424242424242", "-************4242"},
		// ssn
		{"ssn dashes", "ssn 123-45-6789 ok", "ssn [REDACTED:ssn] ok"},
		{"ssn spaces", "ssn 078 05 1120", "ssn [REDACTED:ssn]"},
		{"ssn area 000", "000-12-3456", "000-12-3456"},
		{"ssn area 666", "666-12-3456", "666-12-3456"},
		{"ssn area 9xx", "912-12-3456", "912-12-3456"},
		{"ssn group 00", "123-00-4567", "123-00-4567"},
		{"ssn serial 0000", "123-45-0000", "123-45-0000"},
		{"ssn mixed separators", "123-45 6789", "123-45 6789"},
		{"ssn too long", "123-45-67890", "123-45-67890"},
		{"ssn plain nine digits", "123456789", "123456789"},
		// iban
		{"iban grouped", "to GB82 WEST 1234 5698 7654 32 today", "to [REDACTED:iban] today"},
		{"iban compact", "DE89370400440532013000", "[REDACTED:iban]"},
		{"iban bad checksum", "GB83WEST12345698765432", "GB83WEST12345698765432"},
		{"iban too short", "GB82WEST1234", "GB82WEST1234"},
		// jwt
		{"jwt", "tok eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end", "tok [REDACTED:jwt] end"},
		{"jwt alg none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[REDACTED:jwt]"},
		{"jwt header without alg", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig"},
		{"jwt header not base64", "eyJ!!.abc.def", "eyJ!!.abc.def"},
		{"dotted host", "see www.example.com and a.b.c", "see www.example.com and a.b.c"},
		{"jwt two segments", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0"},
		// secret
		{"aws key id", "key=AKIAIOSFODNN7EXAMPLE;", "key=[REDACTED:secret];"},
		{"aws session key id", "ASIAY34FZKBOKMUTVV7A", "[REDACTED:secret]"},
		{"aws too short", "AKIAIOSFODNN7", "AKIAIOSFODNN7"},
		{"slack", "xoxb-123456789012-abcdefghij", "[REDACTED:secret]"},
		{"slack wrong letter", "xoxz-123456789012-abcdefghij", "xoxz-123456789012-abcdefghij"},
		{"github classic", "ghp_" + strings.Repeat("a1", 18), "[REDACTED:secret]"},
		{"github fine grained", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED:secret]"},
		{"github short", "ghp_abc", "ghp_abc"},
		{"stripe", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[REDACTED:secret]"},
		{"stripe restricted", "rk_live_4eC39HqLyjWDarjtT1zdp7dc", "[REDACTED:secret]"},
		{"stripe test key", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"},
		{"toolgate api key", "tgk_Zx81kQ0pLm2NvB7c", "[REDACTED:secret]"},
		{"toolgate grant token", "use tg_Zx81kQ0pLm2NvB7cQw3e now", "use [REDACTED:secret] now"},
		{"toolgate token short", "tg_short", "tg_short"},
		{"tg inside identifier", "settings_tg_Zx81kQ0pLm2NvB7cQw3e", "settings_tg_Zx81kQ0pLm2NvB7cQw3e"},
		{"bearer", "Authorization: Bearer abcdefghijklmnopqrstuvwxyz.0123456789", "Authorization: Bearer [REDACTED:secret]"},
		{"bearer short", "Bearer abc", "Bearer abc"},
		// private_key
		{"pem", "key:\n" + pem + "\nafter", "key:\n[REDACTED:private_key]\nafter"},
		{"pem without end", "-----BEGIN PRIVATE KEY-----\nMIIEv", "[REDACTED:private_key]"},
		{"pem public key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"},
		{"pem certificate", "-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"},
		// email
		{"email", "mail jane.doe+x@example.co.uk.", "mail [REDACTED:email]."},
		{"email no tld", "user@localhost", "user@localhost"},
		{"email no local part", "@example.com", "@example.com"},
		{"email numeric tld", "a@b.c0m", "a@b.c0m"},
		// mixed
		{"several", "4242424242424242 123-45-6789 a@b.io", "************4242 [REDACTED:ssn] [REDACTED:email]"},
		{"nothing", "plain text, nothing to see", "plain text, nothing to see"},
		{"short", "a@b", "a@b"},
		{"escaped card in text", `card \u0034242424242424242`, "card ************4242"},
		{"escapes without a hit are kept", `path C:\users\u0041`, `path C:\users\u0041`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.MaskText(tt.in); got != tt.want {
				t.Errorf("MaskText(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMaskTextPostgresError masks a database error that echoes a card and an
// email, as the broker does before an error reaches anyone.
func TestMaskTextPostgresError(t *testing.T) {
	m := newMasker(t, Config{})
	msg := `ERROR: duplicate key value violates unique constraint "customers_card_key" (SQLSTATE 23505)` +
		"\nDETAIL: Key (card_number, email)=(4242 4242 4242 4242, jane.doe@example.com) already exists."
	want := `ERROR: duplicate key value violates unique constraint "customers_card_key" (SQLSTATE 23505)` +
		"\nDETAIL: Key (card_number, email)=(************4242, [REDACTED:email]) already exists."
	if got := m.MaskText(msg); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestLuhnAndMod97(t *testing.T) {
	for _, tt := range []struct {
		digits string
		ok     bool
	}{{"4242424242424242", true}, {"79927398713", true}, {"79927398710", false}, {"0", true}} {
		d := make([]byte, len(tt.digits))
		for i := range tt.digits {
			d[i] = tt.digits[i] - '0'
		}
		if luhn(d) != tt.ok {
			t.Errorf("luhn(%s) = %v", tt.digits, !tt.ok)
		}
	}
	if r := mod97([]byte("GB82WEST12345698765432")); r != 1 {
		t.Errorf("mod97 of a valid IBAN = %d, want 1", r)
	}
}

// TestPathologicalInputs feeds long runs of almost-matches to every
// detector; scanning must stay linear.
func TestPathologicalInputs(t *testing.T) {
	m := newMasker(t, Config{})
	for _, unit := range []string{
		"eyJa-", "eyJhbGciOiJub25lIn0.", "4 ", "4-", "1234 ", "GB82 ", "GB82", "a@", "@a.", "a.", "tg_a-", "xoxb-",
		"-----BEGIN ", "-----BEGIN RSA PRIVATE KEY-----", "Bearer ", "AKIA", "123-45-", "\\u0034",
	} {
		s := strings.Repeat(unit, 200_000/len(unit)+1)
		start := time.Now()
		_ = m.MaskText(s)
		doc, _ := json.Marshal(map[string]string{"k": s})
		if _, err := m.MaskRecord(doc); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q repeated: %v for 200 KB, want linear time", unit, d)
		}
	}
}

// TestCardAtMatchesLuhn cross-checks the streaming Luhn sums in cardAt with
// luhn over every length a card can have.
func TestCardAtMatchesLuhn(t *testing.T) {
	seed := uint64(42)
	for n := 0; n < 20000; n++ {
		seed = seed*6364136223846793005 + 1442695040888963407
		k := 10 + int(seed>>33)%12 // 10..21 digits
		d := make([]byte, k)
		txt := make([]byte, k)
		x := seed
		for i := range d {
			x = x*6364136223846793005 + 1
			d[i] = byte(x>>60) % 10
			txt[i] = '0' + d[i]
		}
		want := k >= 13 && k <= 19 && luhn(d)
		end, got := cardAt(txt, 0)
		if got != want || got && end != k {
			t.Fatalf("cardAt(%s) = %d, %v; luhn says %v", txt, end, got, want)
		}
	}
}

// TestCardRunMatchesSplits cross-checks cardRun with a direct search: a
// run is masked exactly when it splits into Luhn-valid numbers of 13 to
// 19 digits, and glued cards are always found.
func TestCardRunMatchesSplits(t *testing.T) {
	var splits func(d []byte) bool
	memo := map[int]bool{}
	splits = func(d []byte) bool {
		if len(d) == 0 {
			return true
		}
		if v, ok := memo[len(d)]; ok {
			return v
		}
		v := false
		for k := 13; k <= 19 && k <= len(d) && !v; k++ {
			v = luhn(d[:k]) && splits(d[k:])
		}
		memo[len(d)] = v
		return v
	}
	seed := uint64(7)
	rnd := func() uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return seed >> 33 }
	for n := 0; n < 5000; n++ {
		var txt []byte
		if n%2 == 0 { // random digits
			for k := 20 + int(rnd()%60); k > 0; k-- {
				txt = append(txt, '0'+byte(rnd()%10))
			}
		} else { // glued cards
			for c := 2 + int(rnd()%3); c > 0; c-- {
				txt = append(txt, luhnNumber(13+int(rnd()%7), rnd)...)
			}
		}
		d := make([]byte, len(txt))
		for i, c := range txt {
			d[i] = c - '0'
		}
		clear(memo)
		want := splits(d)
		hits, got := cardRun(txt, 0, len(txt), nil)
		if got != want || n%2 == 1 && !got {
			t.Fatalf("cardRun(%s) = %v, want %v", txt, got, want)
		}
		end := 0
		for _, h := range hits {
			if h.start != end || h.end-h.start < 13 || h.end-h.start > 19 || !luhn(d[h.start:h.end]) {
				t.Fatalf("cardRun(%s) hits %+v", txt, hits)
			}
			end = h.end
		}
		if got && end != len(txt) {
			t.Fatalf("cardRun(%s) hits %+v do not cover the run", txt, hits)
		}
	}
}

// luhnNumber returns k random digits whose last makes them pass Luhn.
func luhnNumber(k int, rnd func() uint64) []byte {
	d := make([]byte, k)
	for i := 0; i < k-1; i++ {
		d[i] = byte(rnd() % 10)
	}
	for c := byte(0); c < 10; c++ {
		if d[k-1] = c; luhn(d) {
			break
		}
	}
	out := make([]byte, k)
	for i := range d {
		out[i] = '0' + d[i]
	}
	return out
}
