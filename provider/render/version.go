package render

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io/fs"
	"strconv"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// versions computes the versions of one mount's objects. A version is an
// HMAC-SHA256, under the cluster's key, of the object's configuration, its
// file mode and its extracted content: the same secret gives the same
// version on every mount and every provider pod, and a version reveals
// nothing of the secret without the key. One HMAC serves the mount, reset
// for each object: keying it costs more than hashing a small secret.
type versions struct {
	mac hash.Hash
	buf []byte
}

func newVersions(key []byte) *versions {
	return &versions{mac: hmac.New(sha256.New, key)}
}

func (v *versions) of(o spc.Object, mode fs.FileMode, versioned []byte) string {
	v.mac.Reset()
	v.mac.Write(o.Config())
	v.buf = append(strconv.AppendUint(append(v.buf[:0], 0), uint64(mode), 8), 0)
	v.mac.Write(v.buf)
	v.mac.Write(versioned)
	v.buf = v.mac.Sum(v.buf[:0])
	return hex.EncodeToString(v.buf)
}
