package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKVDataPath(t *testing.T) {
	v2 := kvMount{path: "secret/", v2: true}
	team := kvMount{path: "team/kv/", v2: true}
	v1 := kvMount{path: "kv/"}
	for _, tc := range []struct {
		m        kvMount
		in, want string
	}{
		{v2, "secret/devops", "secret/data/devops"},
		{v2, "secret/app/db", "secret/data/app/db"},
		{v2, "secret/data/devops", "secret/data/devops"},         // the explicit form reads what it names
		{v2, "secret/metadata/devops", "secret/metadata/devops"}, // so does metadata
		{v2, "secret/database/x", "secret/data/database/x"},      // "data" only as a whole element
		{team, "team/kv/app", "team/kv/data/app"},
		{v1, "kv/app", "kv/app"},
	} {
		assert.Equal(t, tc.want, tc.m.dataPath(tc.in), tc.in)
	}
}

func TestKVPathsRemembersTheLongestMount(t *testing.T) {
	var k KVPaths
	k.remember("conn", kvMount{path: "team/", v2: false})
	k.remember("conn", kvMount{path: "team/kv/", v2: true})
	m, ok := k.lookup("conn", "team/kv/app")
	assert.True(t, ok)
	assert.Equal(t, "team/kv/", m.path)
	_, ok = k.lookup("other-vault", "team/kv/app")
	assert.False(t, ok, "mounts are remembered per Vault connection")
	_, ok = k.lookup("conn", "teamwork/app")
	assert.False(t, ok, "a mount matches whole path elements only")
}
