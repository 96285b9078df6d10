package provider

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/fair"
	"github.com/vaultcsi/vault-csi-provider/provider/render"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// explainRead says what a failed read means for this role and path.
func explainRead(err error, mt *mount, r spc.Call) error {
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return fmt.Errorf("vault role %q may not %s %s: %w; grant it in a policy attached to the role", mt.params.Role, r.Method, r.Path, err)
	case errors.Is(err, vault.ErrNotFound):
		return fmt.Errorf("nothing in vault at %s: %w; check secretPath (KV version 2 paths read as <mount>/data/<name>)", r.Path, err)
	case errors.Is(err, vault.ErrEmptyResponse):
		return fmt.Errorf("vault returned no data for %s %s: %w", r.Method, r.Path, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("reading %s from vault at %s timed out: %w", r.Path, mt.cfg.Address, err)
	case errors.Is(err, vault.ErrTLSVerify), errors.Is(err, vault.ErrTLSRefused):
		return auth.ExplainTLS(err, mt.cfg.Address)
	case errors.Is(err, vault.ErrNotAllowed):
		return fmt.Errorf("vaultAddress %s: %w", mt.cfg.Address, err)
	case errors.Is(err, vault.ErrUnavailable):
		return fmt.Errorf("cannot read %s from vault at %s: %w; check that Vault is running and unsealed", r.Path, mt.cfg.Address, err)
	}
	return fmt.Errorf("reading %s from vault: %w", r.Path, err)
}

// Code is the gRPC status code for a mount error.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, auth.ErrLoginDenied), errors.Is(err, vault.ErrNotAllowed):
		return codes.PermissionDenied
	case errors.Is(err, spc.ErrInvalidParameters), errors.Is(err, vault.ErrInvalidRequest), errors.Is(err, render.ErrDecode):
		return codes.InvalidArgument
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, auth.ErrTokenRequestForbidden), errors.Is(err, ErrPodOverride), errors.Is(err, ErrPodIdentity):
		return codes.PermissionDenied
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, render.ErrSecretKeyNotFound), errors.Is(err, vault.ErrEmptyResponse):
		return codes.NotFound
	case errors.Is(err, vault.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, auth.ErrNoToken):
		return codes.FailedPrecondition
	case errors.Is(err, render.ErrTooLarge), errors.Is(err, vault.ErrTooLarge), errors.Is(err, render.ErrBudget), errors.Is(err, fair.ErrBytesBusy):
		return codes.ResourceExhausted
	}
	return codes.Internal
}
