package render

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// MaxResponseBytes is the largest MountResponse the driver accepts by default.
const MaxResponseBytes = 4 << 20

// ErrTooLarge means the files do not fit in one response to the driver.
var ErrTooLarge = errors.New("mount response too large")

// Fetched is what one object's calls produced (a body, a template's output,
// a token); Versioned is what a template's version covers besides its output.
type Fetched struct {
	Body      []byte
	Versioned []byte
}

// extract is the object's content and what its version covers.
func (f Fetched) extract(o spc.Object) (Extracted, error) {
	if !o.VaultToken && o.Template == "" {
		return Extract(o, f.Body)
	}
	versioned := append(append(append([]byte(nil), f.Body...), 0), f.Versioned...)
	return Extracted{Content: f.Body, Versioned: versioned}, nil
}

// Files builds the MountResponse: each object's files with its mode
// (filePermission, else defaultMode) and its version under key.
func Files(key []byte, objects []spc.Object, defaultMode fs.FileMode, fetched func(spc.Object) Fetched) (*v1alpha1.MountResponse, error) {
	resp := &v1alpha1.MountResponse{}
	paths := map[string]string{} // file path -> object, to catch clashes
	versions := newVersions(key)
	add := func(o spc.Object, path string, mode fs.FileMode, contents []byte) error {
		if other, dup := paths[path]; dup {
			return fmt.Errorf("%w: objects %q and %q both write %s: rename one", spc.ErrInvalidParameters, other, o.Name, path)
		}
		paths[path] = o.Name
		resp.Files = append(resp.Files, &v1alpha1.File{Path: path, Mode: int32(mode), Contents: contents})
		return nil
	}
	for _, o := range objects {
		ex, err := fetched(o).extract(o)
		if err != nil {
			return nil, err
		}
		mode := defaultMode
		if o.Mode != nil {
			mode = fs.FileMode(*o.Mode)
		}
		if ex.Files == nil {
			if err := add(o, o.Name, mode, ex.Content); err != nil {
				return nil, err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(ex.Files)) {
			if err := add(o, o.Name+"/"+k, mode, ex.Files[k]); err != nil {
				return nil, err
			}
		}
		resp.ObjectVersion = append(resp.ObjectVersion, &v1alpha1.ObjectVersion{Id: o.Name, Version: versions.of(o, mode, ex.Versioned)})
	}
	if size := proto.Size(resp); size > MaxResponseBytes {
		return nil, fmt.Errorf("%w: the files total %d bytes, over the driver's %d; largest objects: %s: split them across volumes or select single keys with secretKey",
			ErrTooLarge, size, MaxResponseBytes, largest(resp.Files, 3))
	}
	return resp, nil
}

func largest(files []*v1alpha1.File, n int) string {
	sorted := append([]*v1alpha1.File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i].Contents) > len(sorted[j].Contents) })
	var parts []string
	for _, f := range sorted[:min(n, len(sorted))] {
		parts = append(parts, fmt.Sprintf("%s (%d bytes)", f.Path, len(f.Contents)))
	}
	return strings.Join(parts, ", ")
}

// versions computes the versions of one mount's objects: an HMAC-SHA256,
// under the cluster's key, of the object's configuration, file mode and
// content, the same on every provider pod and revealing nothing without the
// key. One HMAC serves the mount, reset for each object.
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
