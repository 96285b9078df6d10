// Package auth turns a pod's service-account token (the driver's, or one
// minted) into a Vault token, cached, renewed and revoked per pod identity.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

// Pod identifies the pod a mount is for, as the kubelet reports it.
type Pod struct {
	Name           string
	Namespace      string
	UID            string
	ServiceAccount string
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Token is a service-account token in the driver's JSON form; it never
// prints or marshals its value.
type Token struct {
	Value  string    `json:"token"`
	Expiry time.Time `json:"expirationTimestamp"`
}

// MarshalJSON redacts the token, as String does.
func (t Token) MarshalJSON() ([]byte, error) {
	type redacted Token // without this method
	return json.Marshal(redacted{Value: "[REDACTED]", Expiry: t.Expiry})
}

// String redacts the token.
func (Token) String() string { return "[REDACTED]" }

// LogValue redacts the token in structured logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("value", "[REDACTED]"), slog.Time("expiry", t.Expiry))
}

// ErrNoToken means no token for the audience was sent and none could be minted.
var ErrNoToken = errors.New("no service-account token")

// ErrTokenRequestForbidden means the provider may not mint tokens.
var ErrTokenRequestForbidden = errors.New("TokenRequest forbidden")

// ParseTokens reads the driver's serviceAccount.tokens ({"<audience>":
// {"token", "expirationTimestamp"}}); errors never quote the input.
func ParseTokens(raw string) (map[string]Token, error) {
	var tokens map[string]Token
	if err := json.Unmarshal([]byte(raw), &tokens); err != nil {
		return nil, errors.New("not a JSON map of audience to {token, expirationTimestamp}")
	}
	for aud, t := range tokens {
		if t.Value == "" {
			return nil, fmt.Errorf("the entry for audience %q has no token", aud)
		}
	}
	if tokens == nil { // null
		tokens = map[string]Token{}
	}
	return tokens, nil
}

// TokenLifetime is how long a minted token lives (the API's minimum is 10 minutes).
const TokenLifetime = 15 * time.Minute

// Minter creates service-account tokens with the TokenRequest API.
type Minter interface {
	CreateToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// TokenSource picks the token for an audience, minting one when the driver
// sent none. Kube may be nil, in which case nothing is minted.
type TokenSource struct {
	Kube Minter
	// Fallback mints a token with the TokenRequest API when the driver sent
	// none for the audience (-token-request-fallback). Off, the provider
	// needs no right to create tokens for other service accounts.
	Fallback bool
	Now      func() time.Time
}

// Token returns the pod's token for audience: the driver's while it has not
// expired, else, with Fallback, one minted and bound to the pod.
func (s TokenSource) Token(ctx context.Context, pod Pod, audience string, sent map[string]Token) (Token, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if t, ok := sent[audience]; ok && (t.Expiry.IsZero() || t.Expiry.After(now())) {
		return t, nil
	}
	if !s.Fallback || s.Kube == nil {
		return Token{}, fmt.Errorf("%w for audience %q: the driver sent none; add {audience: %s} to the CSIDriver's tokenRequests (the driver chart's tokenRequests value), "+
			"or let the provider mint tokens itself with -token-request-fallback (chart value tokenRequestFallback: true, which grants it create on serviceaccounts/token)", ErrNoToken, audience, audience)
	}
	if pod.Namespace == "" || pod.ServiceAccount == "" || pod.Name == "" || pod.UID == "" {
		return Token{}, fmt.Errorf("%w for audience %q: the pod's name, uid or service account is missing; set podInfoOnMount: true on the CSIDriver", ErrNoToken, audience)
	}
	seconds := int64(TokenLifetime / time.Second)
	req := &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{audience},
			ExpirationSeconds: &seconds,
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				APIVersion: "v1",
				Kind:       "Pod",
				Name:       pod.Name,
				UID:        types.UID(pod.UID),
			},
		},
	}
	resp, err := s.Kube.CreateToken(ctx, pod.Namespace, pod.ServiceAccount, req)
	switch {
	case apierrors.IsForbidden(err):
		return Token{}, fmt.Errorf("%w: the driver sent no token for audience %q and the provider's service account may not create serviceaccounts/token in namespace %q: grant it verb create on resource serviceaccounts/token, or add {audience: %s} to the CSIDriver's tokenRequests", ErrTokenRequestForbidden, audience, pod.Namespace, audience)
	case err != nil:
		return Token{}, fmt.Errorf("%w for audience %q: TokenRequest for service account %s/%s failed: %w", ErrNoToken, audience, pod.Namespace, pod.ServiceAccount, err)
	}
	return Token{Value: resp.Status.Token, Expiry: resp.Status.ExpirationTimestamp.Time}, nil
}
