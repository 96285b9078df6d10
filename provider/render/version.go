package render

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"io/fs"
	"strconv"
)

// Version is an HMAC-SHA256, under the cluster's key, of the object's
// configuration, its file mode and its extracted content. The same secret
// gives the same version on every mount and every provider pod; a version
// reveals nothing of the secret without the key.
func Version(key []byte, o spc.Object, mode fs.FileMode, versioned []byte) string {
	mac := hmac.New(sha256.New, key)
	cfg, _ := json.Marshal(o) // a struct of strings, maps from YAML and numbers: cannot fail
	mac.Write(cfg)
	mac.Write([]byte{0})
	mac.Write([]byte(strconv.FormatUint(uint64(mode), 8)))
	mac.Write([]byte{0})
	mac.Write(versioned)
	return hex.EncodeToString(mac.Sum(nil))
}
