package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxErrorBodyBytes bounds what is read of an error answer (status 400 and
// above) and of a login's: Vault's own are a few hundred bytes to a few
// KiB; a proxy's HTML page is not read further.
const MaxErrorBodyBytes = 64 << 10

// smallAnswer marks a request whose answer is small however it ends (a
// login): the API client reads it whole, twice over, before we see it.
type smallAnswer struct{}

func expectSmallAnswer(ctx context.Context) context.Context {
	return context.WithValue(ctx, smallAnswer{}, true)
}

// errBodyTooLarge is the error reading past a body's bound.
var errBodyTooLarge = errors.New("vault response body over its bound")

// boundedBodies is the Vault client's transport: no body of any answer
// (logins, errors, reads, lease renewals) is read past its bound, whichever
// code reads it, the API client's or ours.
type boundedBodies struct {
	next http.RoundTripper
}

func (b boundedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	limit := int64(MaxResponseBytes) + 1 // Do says which read was over MaxResponseBytes
	if resp.StatusCode >= 400 || r.Context().Value(smallAnswer{}) != nil {
		limit = MaxErrorBodyBytes
	}
	resp.Body = &boundedBody{body: resp.Body, left: limit}
	return resp, nil
}

// boundedBody fails a read past its bound instead of returning more.
type boundedBody struct {
	body io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.body.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: stopped reading it", errBodyTooLarge)
		}
		return b.body.Read(p[:0]) // EOF or the body's own error
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.body.Close() }
