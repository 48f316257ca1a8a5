package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// adminAccess is how a command reaches a switchyard admin API that asks
// for credentials: a bearer token's file (server.admin_auth) and, for an
// https URL, the CA to trust and a client certificate (server.admin_tls,
// admin_auth.client_certificates). Every command that calls the admin API
// takes the same four flags.
type adminAccess struct {
	tokenFile, caFile, certFile, keyFile string
}

// addAdminAccessFlags defines the flags on fs; when ends the help of those
// that only apply with another flag (" (with --register)"), or is empty.
func addAdminAccessFlags(fs *flag.FlagSet, when string) *adminAccess {
	a := &adminAccess{}
	fs.StringVar(&a.tokenFile, "token-file", "", "file holding the admin API's bearer token (server.admin_auth), re-read at every request"+when)
	fs.StringVar(&a.caFile, "tls-ca-file", "", "CA to check an https admin URL's certificate against (server.admin_tls)"+when)
	fs.StringVar(&a.certFile, "tls-cert-file", "", "client certificate to present to the admin API (admin_auth.client_certificates)"+when)
	fs.StringVar(&a.keyFile, "tls-key-file", "", "the client certificate's key (with --tls-cert-file)")
	return a
}

// problems are the flags' mistakes found before anything starts: a token
// file that cannot be read, a certificate without its key or the reverse.
func (a *adminAccess) problems() []error {
	var out []error
	if a.tokenFile != "" {
		if _, err := readToken(a.tokenFile); err != nil {
			out = append(out, err)
		}
	}
	if (a.certFile == "") != (a.keyFile == "") {
		out = append(out, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	return out
}

// client reaches the admin API: over HTTPS it trusts --tls-ca-file (the
// system's roots when empty) and presents --tls-cert-file when given.
func (a *adminAccess) client(timeout time.Duration) (*http.Client, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.caFile != "" {
		pem, err := os.ReadFile(a.caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate", a.caFile)
		}
	}
	if a.certFile != "" {
		pair, err := tls.LoadX509KeyPair(a.certFile, a.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: c}}, nil
}

// authorize adds the bearer token to req, read from its file each time so
// that a rotated token is picked up by the next request.
func (a *adminAccess) authorize(req *http.Request) error {
	if a.tokenFile == "" {
		return nil
	}
	tok, err := readToken(a.tokenFile)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// readToken reads a bearer token file: one line, surrounding space trimmed.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: empty", path)
	}
	return tok, nil
}

// adminURL parses an admin API's base URL given to flag.
func adminURL(flag, s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--%s %q: want an admin URL like http://127.0.0.1:18001", flag, s)
	}
	return u, nil
}
