package pgwire_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/toolgate/toolgate/connectors/pgwire"
)

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "toolgate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

func TestProxyTLS(t *testing.T) {
	e := newEnv(t)
	srv, err := pgwire.New(pgwire.Config{Listen: "127.0.0.1:0", Target: "crm", DSN: e.upstream, TLS: selfSigned(t)}, e.pipe, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := srv.Addr().(*net.TCPAddr).Port
	for _, mode := range []string{"sslmode=require", "sslmode=require sslnegotiation=direct", "sslmode=disable"} {
		t.Run(mode, func(t *testing.T) {
			dsn := "host=127.0.0.1 user=support-bot/triage dbname=x " + mode + " port=" + itoa(port) + " password=" + e.key
			c, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Close(context.Background())
			var one int
			if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("query: %v", err)
			}
			_, tlsOn := c.PgConn().Conn().(*tls.Conn)
			if strings.Contains(mode, "require") != tlsOn {
				t.Fatalf("TLS = %v", tlsOn)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := pgwire.Config{Listen: "127.0.0.1:6432", Target: "crm", DSN: "postgres://u@127.0.0.1/x"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mut  func(*pgwire.Config)
		want string
	}{
		"plaintext on a public address": {func(c *pgwire.Config) { c.Listen = "0.0.0.0:6432" }, "not a loopback"},
		"no target":                     {func(c *pgwire.Config) { c.Target = "" }, "target"},
		"no dsn":                        {func(c *pgwire.Config) { c.DSN = "" }, "dsn"},
		"bad dsn":                       {func(c *pgwire.Config) { c.DSN = "postgres://%zz" }, "invalid dsn"},
	} {
		c := ok
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	public := ok
	public.Listen, public.TLS = "0.0.0.0:6432", &tls.Config{}
	if err := public.Validate(); err != nil {
		t.Fatalf("TLS on a public address: %v", err)
	}
}
