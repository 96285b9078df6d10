// Command image packs files into a single-layer container image and writes it
// as a tarball that `ctr images import` and `kind load image-archive` accept.
// It stands in for `docker build` where no Docker engine runs:
//
//	image -tag vault-csi-provider:dev -out provider.tar -user 65532:65532 \
//	  -file bin/vault-csi-provider=/vault-csi-provider:0755 \
//	  -entrypoint /vault-csi-provider
//
// With -platforms it writes an OCI image layout, as a tarball, whose index
// holds one image per platform; {arch} in a -file source is each one's
// architecture (bin/linux_{arch}/vault-csi-provider).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file of the layer: host source (empty for inline content),
// path in the image and mode.
type entry struct {
	src, dst string
	content  []byte
	mode     int64
	link     string // target of a symbolic link, instead of content
}

type entries []entry

func (e *entries) String() string { return fmt.Sprint(len(*e)) }

// Set parses SRC=DST[:MODE].
func (e *entries) Set(v string) error {
	src, dst, ok := strings.Cut(v, "=")
	if !ok || src == "" || !strings.HasPrefix(dst, "/") {
		return fmt.Errorf("-file %q: want SRC=/DST[:MODE]", v)
	}
	mode := int64(0o644)
	if d, m, ok := strings.Cut(dst, ":"); ok {
		parsed, err := strconv.ParseInt(m, 8, 32)
		if err != nil {
			return fmt.Errorf("-file %q: mode %q is not octal", v, m)
		}
		dst, mode = d, parsed
	}
	*e = append(*e, entry{src: src, dst: path.Clean(dst), mode: mode})
	return nil
}

func main() {
	var files entries
	tag := flag.String("tag", "", "image reference, e.g. vault-csi-provider:dev")
	out := flag.String("out", "", "tarball to write")
	user := flag.String("user", "", "user the image runs as, e.g. 65532:65532")
	entrypoint := flag.String("entrypoint", "", "entrypoint, space-separated")
	passwd := flag.Bool("nonroot-passwd", false, "add /etc/passwd and /etc/group with root and nonroot (65532)")
	flag.Var(&files, "file", "SRC=/DST[:MODE] to put in the layer (repeatable)")
	flag.Func("symlink", "/LINK=TARGET: a symbolic link in the layer (repeatable)", func(v string) error {
		l, target, ok := strings.Cut(v, "=")
		if !ok || !strings.HasPrefix(l, "/") || target == "" {
			return fmt.Errorf("-symlink %q: want /LINK=TARGET", v)
		}
		files = append(files, entry{dst: path.Clean(l), link: target, mode: 0o777})
		return nil
	})
	platforms := flag.String("platforms", "", "comma-separated linux/ARCH list: write an OCI image index with one image each (default: one image for this machine's architecture)")
	flag.Parse()
	spec := imageSpec{user: *user, entrypoint: *entrypoint, passwd: *passwd, files: files}
	if err := run(*tag, *out, *platforms, spec); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// imageSpec is what every platform's image has in common.
type imageSpec struct {
	user, entrypoint string
	passwd           bool
	files            entries
}

func run(tag, out, platforms string, spec imageSpec) error {
	if tag == "" || out == "" || len(spec.files) == 0 {
		return errors.New("-tag, -out and at least one -file are required")
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	if platforms == "" {
		img, err := spec.image(runtime.GOARCH)
		if err != nil {
			return err
		}
		return tarball.WriteToFile(out, ref, img)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range strings.Split(platforms, ",") {
		os, arch, ok := strings.Cut(p, "/")
		if !ok || os != "linux" || arch == "" {
			return fmt.Errorf("-platforms: %q: want linux/ARCH", p)
		}
		img, err := spec.image(arch)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := report(p, img); err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	return writeLayout(out, ref, idx)
}

// report prints a platform's image digest and size (its layer, compressed
// as a registry stores it, and unpacked).
func report(platform string, img v1.Image) error {
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var packed, unpacked int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return err
		}
		packed += n
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		m, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
		unpacked += m
	}
	fmt.Printf("%-14s %s  %6.2f MiB compressed, %6.2f MiB unpacked\n", platform, digest, float64(packed)/(1<<20), float64(unpacked)/(1<<20))
	return nil
}

// writeLayout writes idx as an OCI image layout, tagged ref, into the
// tarball out (entries in a fixed order: the same inputs, the same bytes).
func writeLayout(out string, ref name.Tag, idx v1.ImageIndex) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref.String()})); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	return errors.Join(err, tw.Close(), f.Close())
}

// image is one platform's: {arch} in the files' sources is arch.
func (spec imageSpec) image(arch string) (v1.Image, error) {
	files := make(entries, len(spec.files))
	for i, f := range spec.files {
		f.src = strings.ReplaceAll(f.src, "{arch}", arch)
		files[i] = f
	}
	user, entrypoint, passwd := spec.user, spec.entrypoint, spec.passwd
	if passwd {
		files = append(files,
			entry{dst: "/etc/passwd", mode: 0o644, content: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			entry{dst: "/etc/group", mode: 0o644, content: []byte("root:x:0:\nnonroot:x:65532:\n")})
	}
	layerTar, err := layer(files)
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Config.User = user
	if entrypoint != "" {
		cfg.Config.Entrypoint = strings.Fields(entrypoint)
	}
	cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	return mutate.ConfigFile(img, cfg)
}

// layer writes the entries, and every parent directory, as a tar stream with
// fixed timestamps, so the same inputs give the same image digest.
func layer(files entries) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].dst < files[j].dst })
	for _, f := range files {
		for d := path.Dir(f.dst); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		if f.link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(f.dst, "/"), Linkname: f.link, Mode: f.mode, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		data := f.content
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				return nil, err
			}
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.dst, "/"), Mode: f.mode, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
