package httpproxy

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// overrideHeaders are request headers some frameworks read as the
// request's real method or path. Names are compared in lower case with
// underscores as dashes, since CGI-style servers map both to one name.
var overrideHeaders = []string{"x-http-method-override", "x-method-override", "x-http-method", "x-original-url", "x-rewrite-url"}

// checkOverrides refuses what could make the target see another method or
// path than policy decided on: method and URL override headers, a
// "_method" query parameter, and a request body with a Content-Encoding
// (toolgate cannot check what it would decode to).
func checkOverrides(r *http.Request) error {
	for k := range r.Header {
		name := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		for _, o := range overrideHeaders {
			if name == o {
				return broker.Errorf(broker.CodeInvalidRequest, "the request carries %s, which could make the target see another method or path than policy decided on; send the request with its real method and path", k)
			}
		}
	}
	if hasMethodParam(r.URL.RawQuery) {
		return broker.Errorf(broker.CodeInvalidRequest, "the query carries _method, which could make the target see another method than policy decided on; send the request with its real method")
	}
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return broker.Errorf(broker.CodeInvalidRequest, "the request body has Content-Encoding %s; toolgate forwards only bodies it can read as sent", c)
			}
		}
	}
	return nil
}

// hasMethodParam reports whether a query or form body names "_method" (in
// any case, escaped or not, with & or ; separators).
func hasMethodParam(q string) bool {
	for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil {
			key = k
		}
		if strings.EqualFold(strings.TrimSpace(key), "_method") {
			return true
		}
	}
	return false
}

// checkForm refuses a form body with a "_method" field (Rails, Laravel and
// Symfony read it as the method), and a JSON body whose top-level object
// has one (Laravel reads a JSON body's members as the form's). It reads
// such bodies whole, within MaxBodyBytes, and puts them back for
// forwarding.
func (p *Proxy) checkForm(w http.ResponseWriter, r *http.Request) error {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isJSON := strings.Contains(mt, "/json") || strings.Contains(mt, "+json") // as Laravel's isJson reads it
	if mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" && !isJSON || r.Body == nil {
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		return broker.Errorf(broker.CodePayloadTooLarge, "the request body exceeds %d bytes or could not be read", p.cfg.MaxBodyBytes)
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	refuse := broker.Errorf(broker.CodeInvalidRequest, "the form carries _method, which could make the target see another method than policy decided on; send the request with its real method")
	if isJSON {
		var members map[string]json.RawMessage
		if json.Unmarshal(body, &members) == nil {
			for k := range members {
				if strings.EqualFold(strings.TrimSpace(k), "_method") {
					return refuse
				}
			}
		}
		return nil
	}
	if mt == "application/x-www-form-urlencoded" {
		if hasMethodParam(string(body)) {
			return refuse
		}
		return nil
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return broker.Errorf(broker.CodeInvalidRequest, "the multipart body could not be parsed, so toolgate cannot check it")
		}
		if strings.EqualFold(strings.TrimSpace(part.FormName()), "_method") {
			return refuse
		}
	}
}

// CheckPassContentType reports what is wrong with a pass_content_types
// entry: it must be a media type ("image/png") or a whole type
// ("image/*"), in lower case, and not one toolgate masks (text, JSON,
// XML).
func CheckPassContentType(t string) error {
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || typ == "" || sub == "" || typ == "*" || strings.ToLower(t) != t || strings.ContainsAny(t, " ;,") {
		return fmt.Errorf("pass_content_types entry %q is not a media type such as image/png or image/*", t)
	}
	if textual(t) || sub == "json" || strings.HasSuffix(sub, "+json") {
		return fmt.Errorf("pass_content_types entry %q is text or JSON, which toolgate masks; it cannot pass unmasked", t)
	}
	return nil
}

// passes reports whether the route declares media type mt as passing
// unmasked.
func (p *Proxy) passes(mt string) bool {
	for _, t := range p.cfg.PassContentTypes {
		if t == mt || strings.HasSuffix(t, "/*") && strings.HasPrefix(mt, strings.TrimSuffix(t, "*")) {
			return true
		}
	}
	return false
}

// textual reports media types that hold text: text/*, XML, YAML, scripts,
// forms.
func textual(mt string) bool {
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+xml") || strings.HasSuffix(mt, "+yaml") {
		return true
	}
	switch mt {
	case "application/xml", "application/javascript", "application/ecmascript", "application/x-javascript",
		"application/x-www-form-urlencoded", "application/yaml", "application/x-yaml", "application/x-ndjson",
		"application/ndjson", "application/graphql", "application/sql", "application/csv":
		return true
	}
	return false
}

// looksText reports whether the first bytes of a body sniff as text or
// JSON, so a body declared binary that is not is masked, not passed.
func looksText(head []byte) bool {
	if t := strings.TrimLeft(string(head), " \t\r\n"); strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		return true
	}
	return strings.HasPrefix(http.DetectContentType(head), "text/")
}

// respond writes the target's response. An unencoded body of a declared
// content type that does not sniff as text streams through; any other
// body is decoded (gzip, deflate) within MaxResponseBytes and masked as
// JSON or text, or passed when declared, or withheld. A *broker.Error
// return means nothing was written yet.
func (p *Proxy) respond(w http.ResponseWriter, resp *http.Response) (int, int, error) {
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	codings := contentCodings(resp.Header)
	var body io.Reader = resp.Body
	if len(codings) == 0 && p.passes(mt) {
		br := bufio.NewReaderSize(resp.Body, 512)
		head, _ := br.Peek(512)
		if !looksText(head) {
			copyHeader(w.Header(), resp.Header)
			w.WriteHeader(resp.StatusCode)
			n, err := io.Copy(w, br)
			return int(n), 0, err
		}
		body = br
	}
	raw, err := p.readBody(body, codings)
	if err != nil {
		return 0, 0, err
	}
	out, count, err := p.maskBody(mt, strings.ToLower(strings.TrimSpace(params["charset"])), raw)
	if err != nil {
		return 0, 0, err
	}
	copyHeader(w.Header(), resp.Header)
	w.Header().Del("Content-Encoding")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(resp.StatusCode)
	n, err := w.Write(out)
	return n, count, err
}

// contentCodings are the response's content codings in the order they
// were applied, identity left out.
func contentCodings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				out = append(out, c)
			}
		}
	}
	return out
}

// readBody decodes the body's content codings and reads it whole, at most
// MaxResponseBytes once decoded.
func (p *Proxy) readBody(body io.Reader, codings []string) ([]byte, error) {
	br := bufio.NewReader(body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil, nil // no body (HEAD, 204, 304): nothing to decode
	}
	body = br
	for i := len(codings) - 1; i >= 0; i-- {
		dec, err := decoder(codings[i], body)
		if err != nil {
			return nil, err
		}
		body = dec
	}
	raw, err := io.ReadAll(io.LimitReader(body, p.cfg.MaxResponseBytes+1))
	switch {
	case err != nil && len(codings) > 0:
		return nil, broker.Wrap(broker.CodeTargetError, err, fmt.Sprintf("target %s's %s response could not be decoded, so it is withheld", p.cfg.Target, strings.Join(codings, ", ")))
	case err != nil:
		return nil, broker.Wrap(broker.CodeTargetUnavailable, err, fmt.Sprintf("target %s's response could not be read", p.cfg.Target))
	case int64(len(raw)) > p.cfg.MaxResponseBytes:
		return nil, broker.Errorf(broker.CodeTargetError, "target %s's response exceeds %d bytes, so it cannot be masked and is withheld", p.cfg.Target, p.cfg.MaxResponseBytes)
	}
	return raw, nil
}

// decoder returns a reader decoding one content coding: gzip, or deflate
// (zlib-wrapped as RFC 9110 says, or raw as some servers send it).
func decoder(coding string, r io.Reader) (io.Reader, error) {
	switch coding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, broker.Wrap(broker.CodeTargetError, err, "the target's gzip response could not be decoded, so it is withheld")
		}
		return zr, nil
	case "deflate":
		br := bufio.NewReader(r)
		if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, broker.Wrap(broker.CodeTargetError, err, "the target's deflate response could not be decoded, so it is withheld")
			}
			return zr, nil
		}
		return flate.NewReader(br), nil
	}
	return nil, broker.Errorf(broker.CodeTargetError, "the target answered with Content-Encoding %s, which toolgate cannot decode to mask, so the response is withheld", coding)
}

// maskBody masks a whole body: as JSON when labelled or parsed as JSON,
// as text when labelled text or valid UTF-8 without NUL bytes; a declared
// content type that does not sniff as text passes; anything else is
// withheld. A body the detectors cannot read as the client will (a
// charset in which ASCII digits and letters are not ASCII bytes, such as
// UTF-16 or UTF-7, or NUL bytes between the characters) is never masked
// as JSON or text.
func (p *Proxy) maskBody(mt, charset string, raw []byte) ([]byte, int, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw, 0, nil
	}
	readable := asciiCharset(charset) && bytes.IndexByte(raw, 0) < 0
	if readable && (mt == "application/json" || strings.HasSuffix(mt, "+json") || json.Valid(raw)) {
		out, stats, err := p.pipe.MaskResponse(broker.KindHTTP, p.cfg.Target, raw)
		if err != nil {
			return nil, 0, broker.Wrap(broker.CodeInternal, err, "the response could not be masked, so it is withheld")
		}
		count := 0
		for _, n := range stats {
			count += n
		}
		return out, count, nil
	}
	if p.passes(mt) && !looksText(raw[:min(len(raw), 512)]) {
		return raw, 0, nil
	}
	if readable && (textual(mt) || utf8.Valid(raw)) {
		s := p.pipe.MaskText(string(raw))
		if s == string(raw) {
			return raw, 0, nil
		}
		return []byte(s), 1, nil
	}
	if !asciiCharset(charset) {
		return nil, 0, broker.Errorf(broker.CodeTargetError, "target %s answered in charset %s, which toolgate cannot read to mask, so it is withheld", p.cfg.Target, charset)
	}
	if mt == "" {
		mt = "no content type"
	}
	return nil, 0, broker.Errorf(broker.CodeTargetError, "target %s answered with %s, which toolgate cannot mask, so it is withheld; "+
		"a route may let a binary type pass unmasked with pass_content_types", p.cfg.Target, mt)
}

// asciiCharset reports whether a response charset (lower case, "" for
// none) spells ASCII digits and letters as ASCII bytes, as the detectors
// read them: UTF-8, ASCII, the ISO 8859 and Windows code pages and the
// common multi-byte CJK and Cyrillic ones. UTF-16, UTF-32, UTF-7, EBCDIC
// and any charset not known here are not.
func asciiCharset(cs string) bool {
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "latin1", "iso-latin-1", "shift_jis", "sjis", "windows-31j", "euc-jp",
		"euc-kr", "gbk", "gb2312", "gb18030", "big5", "koi8-r", "koi8-u":
		return true
	}
	for _, prefix := range []string{"iso-8859-", "iso8859-", "windows-125", "cp125"} {
		if rest, ok := strings.CutPrefix(cs, prefix); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}
