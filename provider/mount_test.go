package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/provider/render"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// A mount's answers count against its bound and the node's until it has
// answered; then they are given back, and a read that outlived the mount (a
// lease load shared with another mount goes on) holds nothing more: the
// node's budget cannot leak.
func TestAnswersAreGivenBackWhenTheMountEnds(t *testing.T) {
	m := &Mounter{MountMaxBytes: 2 << 20, AnswersMaxBytes: 8 << 20}
	mt := &mount{params: spc.Params{Pod: auth.Pod{Namespace: "a"}}}
	hold := m.hold(mt, "secret/data/x")
	require.NoError(t, hold(1<<20))
	require.NoError(t, hold(1<<20))
	require.ErrorIs(t, hold(1), render.ErrTooLarge, "over -mount-max-bytes")
	_, answers := m.limits()
	assert.Equal(t, int64(2<<20), answers.Held())

	m.release(mt)
	assert.Zero(t, answers.Held())
	require.ErrorIs(t, hold(1), errMountEnded)
	assert.Zero(t, answers.Held(), "nothing held after the mount ended")
}
