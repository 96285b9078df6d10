package vault

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// inlineTransport sends plain-http HTTP/1.1 requests on the goroutine that
// makes them: it writes the request and reads the answer itself, with
// net/http's own Request.Write and ReadResponse, on connections it keeps
// for reuse. net/http's Transport hands every request to a writer goroutine
// and its answer back from a reader goroutine; on a warm mount those two
// handoffs cost more CPU than the request's own work (benchmark in the
// README). Everything else, https (where Vault answers over HTTP/2, one
// connection for all reads), a proxy from the environment, goes to next.
type inlineTransport struct {
	next  http.RoundTripper // the *http.Transport the client was configured with
	proxy func(*http.Request) (*url.URL, error)
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	// maxIdle bounds the idle connections kept per address; idleTimeout
	// closes those unused for that long.
	maxIdle     int
	idleTimeout time.Duration

	mu       sync.Mutex
	idle     map[string][]*inlineConn // by host:port, most recently used last
	sweeping bool
}

func newInlineTransport(next *http.Transport) *inlineTransport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &inlineTransport{
		next:        next,
		proxy:       next.Proxy,
		dial:        d.DialContext,
		maxIdle:     next.MaxIdleConnsPerHost,
		idleTimeout: next.IdleConnTimeout,
		idle:        map[string][]*inlineConn{},
	}
}

// inlineConn is one kept connection.
type inlineConn struct {
	conn net.Conn
	raw  syscall.RawConn // nil when conn has no file descriptor (tests' pipes)
	r    *bufio.Reader
	w    *bufio.Writer
	used time.Time // when it was last put back idle
}

func (t *inlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.URL.Host == "" || t.proxied(req) {
		return t.next.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	// A request that cannot be sent twice (its body cannot be read
	// again) goes only on a connection known to be open; any other, a
	// read, is sent again if Vault closed the connection under it.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for {
		c, reused, err := t.get(req.Context(), addr, !replayable)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := t.exchange(req, addr, c)
		if err == nil {
			return resp, nil
		}
		// A kept connection the server closed just as it was taken:
		// send again on another when the request can be sent again
		// (net/http's Transport does the same).
		if !reused || !errors.Is(err, errClosedBeforeAnswer) || req.Context().Err() != nil {
			closeBody(req)
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err
			}
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func (t *inlineTransport) proxied(req *http.Request) bool {
	if t.proxy == nil {
		return false
	}
	u, err := t.proxy(req)
	return err != nil || u != nil
}

// errClosedBeforeAnswer is a kept connection that ended before any byte of
// the answer came.
var errClosedBeforeAnswer = errors.New("vault closed a kept connection before answering")

// exchange writes req on c and reads the answer's head; the body returned
// gives c back to the pool once it is read to its end.
func (t *inlineTransport) exchange(req *http.Request, addr string, c *inlineConn) (*http.Response, error) {
	ctx := req.Context()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(dl)
	}
	// A cancelled request ends its reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	closed := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return errClosedBeforeAnswer
		}
		return err
	}
	if err := req.Write(c.w); err != nil {
		return fail(closed(err))
	}
	if err := c.w.Flush(); err != nil {
		return fail(closed(err))
	}
	if _, err := c.r.Peek(1); err != nil {
		return fail(closed(err))
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		return fail(err)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		t.release(addr, c, stop, keep)
		return resp, nil
	}
	resp.Body = &inlineBody{body: resp.Body, done: func(reusable bool) { t.release(addr, c, stop, keep && reusable) }}
	return resp, nil
}

// release puts c back idle, or closes it when it cannot be reused or its
// request's cancellation already fired.
func (t *inlineTransport) release(addr string, c *inlineConn, stop func() bool, keep bool) {
	if !stop() || !keep || c.r.Buffered() > 0 {
		_ = c.conn.Close()
		return
	}
	_ = c.conn.SetDeadline(time.Time{})
	c.used = time.Now()
	t.mu.Lock()
	conns := t.idle[addr]
	if len(conns) >= t.maxIdle {
		t.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	t.idle[addr] = append(conns, c)
	sweep := !t.sweeping && t.idleTimeout > 0
	t.sweeping = t.sweeping || sweep
	t.mu.Unlock()
	if sweep {
		time.AfterFunc(t.idleTimeout, t.sweep)
	}
}

// get takes the most recently used idle connection to addr, or dials a new
// one. With check, a kept connection is first checked to be still open.
func (t *inlineTransport) get(ctx context.Context, addr string, check bool) (c *inlineConn, reused bool, err error) {
	for {
		t.mu.Lock()
		conns := t.idle[addr]
		if len(conns) == 0 {
			t.mu.Unlock()
			break
		}
		c = conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[addr] = conns[:len(conns)-1]
		t.mu.Unlock()
		if !check || c.open() {
			return c, true, nil
		}
		_ = c.conn.Close()
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c = &inlineConn{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	if sc, ok := conn.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c, false, nil
}

// open reports whether an idle connection is still open: nothing to read
// on it (an idle HTTP/1.1 connection has nothing until it is asked), not
// its end. It costs one non-blocking system call and no goroutine.
func (c *inlineConn) open() bool {
	if c.raw == nil {
		return false
	}
	alive := false
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(err, syscall.EAGAIN)
		return true // never wait
	})
	return err == nil && alive
}

// sweep closes the connections idle for longer than idleTimeout, and comes
// back while any are left.
func (t *inlineTransport) sweep() {
	cutoff := time.Now().Add(-t.idleTimeout)
	var stale []*inlineConn
	t.mu.Lock()
	left := 0
	for addr, conns := range t.idle {
		kept := conns[:0]
		for _, c := range conns {
			if c.used.Before(cutoff) {
				stale = append(stale, c)
			} else {
				kept = append(kept, c)
			}
		}
		clear(conns[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
		left += len(kept)
	}
	t.sweeping = left > 0
	t.mu.Unlock()
	for _, c := range stale {
		_ = c.conn.Close()
	}
	if left > 0 {
		time.AfterFunc(t.idleTimeout/2, t.sweep)
	}
}

// inlineBody hands its connection back when the answer has been read to
// its end; closed before that, the connection is closed too (what is left
// of the answer is not read: it may be large).
type inlineBody struct {
	body io.ReadCloser
	done func(reusable bool)
	once sync.Once
}

func (b *inlineBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil {
		b.once.Do(func() { b.done(errors.Is(err, io.EOF)) })
	}
	return n, err
}

// Close closes the connection first when the answer was not read to its
// end: net/http's response body would otherwise read the rest of it.
func (b *inlineBody) Close() error {
	early := false
	b.once.Do(func() { early = true; b.done(false) })
	err := b.body.Close()
	if early {
		return nil // the error of reading the closed connection
	}
	return err
}
