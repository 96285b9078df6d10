package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrNotAllowed is an address the operator did not allow a class to send the provider to.
var ErrNotAllowed = errors.New("vault address not allowed")

// Reach says where a class may send the provider (and a pod's token): the
// operator's list (-allowed-vault-addresses; empty: anywhere) and, whatever
// it says, never a link-local or cloud metadata address unless an entry
// names that host. Entries are "https://host[:port]", "host" or "*.domain".
type Reach struct {
	Allowed []string
}

// metadataV6 is AWS's IPv6 instance metadata address.
var metadataV6 = netip.MustParseAddr("fd00:ec2::254")

// check refuses an address the list does not allow.
func (r Reach) check(u *url.URL) error {
	if len(r.Allowed) == 0 || r.listed(u) {
		return nil
	}
	return fmt.Errorf("%w: %s is not on the provider's -allowed-vault-addresses (%s): use an allowed vaultAddress, or ask the operator to add it",
		ErrNotAllowed, u.Scheme+"://"+u.Host, strings.Join(r.Allowed, ","))
}

// listed reports whether an entry names u's host.
func (r Reach) listed(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	for _, e := range r.Allowed {
		e = strings.ToLower(strings.TrimSpace(e))
		if scheme, rest, ok := strings.Cut(e, "://"); ok {
			eu := &url.URL{Scheme: scheme, Host: strings.TrimSuffix(rest, "/")}
			if scheme == strings.ToLower(u.Scheme) && eu.Hostname() == host && (eu.Port() == "" || eu.Port() == portOf(u)) {
				return true
			}
			continue
		}
		if suffix, ok := strings.CutPrefix(e, "*."); ok && strings.HasSuffix(host, "."+suffix) || e == host {
			return true
		}
	}
	return false
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// dial refuses link-local and metadata addresses, whatever name led there,
// unless an entry names the host being dialed.
func (r Reach) dial(dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := *dialer
	guarded.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if ip := ap.Addr().Unmap(); err == nil && (ip.IsLinkLocalUnicast() || ip == metadataV6) {
			return fmt.Errorf("%w: %s is a link-local or cloud metadata address: only an -allowed-vault-addresses entry naming the host reaches it", ErrNotAllowed, ip)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if r.listed(&url.URL{Scheme: "https", Host: addr}) || r.listed(&url.URL{Scheme: "http", Host: addr}) {
			return dialer.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// guarded sends a request only to its connection's own scheme and host,
// or to one the list allows: a redirect elsewhere never carries the token.
type guarded struct {
	origin *url.URL
	reach  Reach
	next   http.RoundTripper
}

func (g guarded) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL
	same := strings.EqualFold(u.Scheme, g.origin.Scheme) && strings.EqualFold(u.Hostname(), g.origin.Hostname())
	if !same && (len(g.reach.Allowed) == 0 || !g.reach.listed(u)) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%w: vault at %s redirected to %s, another host: list it in -allowed-vault-addresses if it is a Vault of yours",
			ErrNotAllowed, g.origin.Host, u.Scheme+"://"+u.Host)
	}
	return g.next.RoundTrip(r)
}
