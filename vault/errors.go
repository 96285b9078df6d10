package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Kinds of failure, for errors.Is: each asks the user for something else.
var (
	ErrPermissionDenied = errors.New("vault denied the request")
	ErrInvalidRequest   = errors.New("vault rejected the request")
	ErrNotFound         = errors.New("vault has nothing at the path")
	ErrUnavailable      = errors.New("vault is unavailable")
	ErrEmptyResponse    = errors.New("vault returned no data")
	ErrTooLarge         = errors.New("vault response too large")
	// With ErrUnavailable when the TLS handshake failed: Vault's
	// certificate did not verify, or Vault ended the handshake with an alert
	// (e.g. it requires a client certificate, or refused ours).
	ErrTLSVerify  = errors.New("vault's TLS certificate did not verify")
	ErrTLSRefused = errors.New("vault refused the TLS handshake")
)

// Error is a failed call to Vault. Its message names the operation and path
// and quotes Vault's own error text; it never contains a token.
type Error struct {
	Op     string // "login" or "read"
	Method string
	Path   string
	Status int // HTTP status, 0 when Vault did not answer
	Kind   error
	Detail string // Vault's error messages, or why there was no answer
	Err    error
	tls    error // ErrTLSVerify or ErrTLSRefused when the handshake failed
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s: ", e.Op, e.Method, e.Path)
	if e.Status != 0 {
		fmt.Fprintf(&b, "vault answered %d", e.Status)
	} else {
		b.WriteString(e.Kind.Error())
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	return b.String()
}

// Unwrap lets errors.Is match both the kind and the cause (e.g. context.DeadlineExceeded).
func (e *Error) Unwrap() []error {
	if e.tls != nil {
		return []error{e.Kind, e.tls, e.Err}
	}
	return []error{e.Kind, e.Err}
}

// tlsFailure tells a certificate that does not verify (ErrTLSVerify) from a
// server's alert (ErrTLSRefused: a net.OpError "remote error"); else nil.
func tlsFailure(err error) error {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return ErrTLSVerify
	case errors.As(err, &op) && op.Op == "remote error":
		return ErrTLSRefused
	}
	return nil
}

// classify turns what the Vault client returned into an *Error, with redact
// (the login's JWT) removed from every message. Of an answer that is not
// Vault's JSON it keeps the status, content type and length, never the text:
// whatever answered may have put anything there.
func classify(ctx context.Context, op, method, path string, resp *api.Response, err error, redact string) *Error {
	e := &Error{Op: op, Method: method, Path: path, Err: err}
	if resp != nil && resp.Response != nil {
		e.Status = resp.StatusCode
	}
	var respErr *api.ResponseError
	switch {
	case errors.As(err, &respErr) && respErr.RawError:
		e.Status = respErr.StatusCode
		e.Detail = fmt.Sprintf("an answer that is not Vault's (%q, %d bytes): check vaultAddress points at Vault's API", contentType(resp), len(strings.Join(respErr.Errors, "")))
		e.Err = errors.New(e.Detail) // respErr quotes the body
	case errors.As(err, &respErr):
		e.Status = respErr.StatusCode
		e.Detail = strings.Join(cleanMessages(respErr.Errors), "; ")
	case errors.Is(err, errBodyTooLarge):
		e.Kind = ErrTooLarge
		e.Detail = fmt.Sprintf("the answer is over %d bytes (%d for a login or an error)", MaxResponseBytes, MaxErrorBodyBytes)
		return e
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		e.Kind = ErrUnavailable
		e.Detail = "no answer before the deadline"
		e.Err = errors.Join(err, context.DeadlineExceeded)
		return e
	case err != nil:
		e.Kind = ErrUnavailable
		e.Detail = err.Error()
		e.tls = tlsFailure(err)
	}
	if redact != "" {
		e.Detail = strings.ReplaceAll(e.Detail, redact, "[REDACTED]")
	}
	if e.Kind == nil {
		e.Kind = kindOf(e.Status)
	}
	return e
}

func kindOf(status int) error {
	switch {
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return ErrPermissionDenied
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusNoContent:
		return ErrEmptyResponse
	case status == http.StatusTooManyRequests || status >= 500:
		return ErrUnavailable
	default:
		return ErrInvalidRequest
	}
}

// cleanMessages flattens Vault's multi-line "* 1 error occurred" texts.
func cleanMessages(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		for _, line := range strings.Split(m, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line == "" || strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") {
				continue
			}
			out = append(out, line)
		}
	}
	return out
}

// StatusClass is "2xx", "4xx", "5xx", or "error" without an answer: a metric label.
func StatusClass(err error) string {
	if err == nil {
		return "2xx"
	}
	var e *Error
	if errors.As(err, &e) && e.Status != 0 {
		return fmt.Sprintf("%dxx", e.Status/100)
	}
	return "error"
}

func contentType(resp *api.Response) string {
	if resp == nil || resp.Response == nil {
		return ""
	}
	return resp.Header.Get("Content-Type")
}
