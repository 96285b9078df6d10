#!/usr/bin/env bash
# Runs the secrets-store-csi-driver's own provider suites, test/bats/vault.bats
# and test/bats/openbao.bats, from its Go module (the version
# test/tools/csi pins), against our provider on the current cluster (kind.sh
# up with VCP_KIND_PROFILE=upstream). Every case runs as the file has it,
# but for the cases that install the provider and set up its server from the
# internet: their bodies become a call to setup.sh doing the same. Prints
# the count per file; exits non-zero if a case failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${VCP_UPSTREAM_DIR:-/var/tmp/vcp-upstream}

say() { echo "upstream: $*" >&2; }

module=$(cd "$repo/test/tools/csi" && go mod download -json sigs.k8s.io/secrets-store-csi-driver | jq -r .Dir)
[[ -f $module/test/bats/vault.bats ]] || { say "no test/bats/vault.bats in $module"; exit 1; }

# ours FILE: the cases of FILE whose bodies setup.sh replaces, as
# "case name<TAB>setup.sh command" lines.
ours() {
	case $1 in
	vault.bats) printf '%s\t%s\n' "install vault provider" install-vault "setup vault" setup-vault ;;
	openbao.bats) printf '%s\t%s\n' "install openbao provider" install-openbao "configure openbao" configure-openbao ;;
	esac
}

# rewrite FILE OUT: FILE with the bodies of ours(FILE) replaced; fails if
# one of those cases is not in FILE (the suite changed: look again).
rewrite() {
	local file=$1 out=$2
	awk -v setup="$here/setup.sh" -v table="$(ours "$(basename "$file")")" '
		BEGIN {
			n = split(table, rows, "\n")
			for (i = 1; i <= n; i++) { split(rows[i], f, "\t"); cmd["@test \"" f[1] "\" {"] = f[2] }
		}
		# A heredoc in a body may hold a line "}" of its own.
		heredoc != "" { if ($0 == heredoc) heredoc = ""; next }
		skipping && match($0, /<<-?[\047"]?[A-Za-z_]+/) {
			heredoc = substr($0, RSTART, RLENGTH); gsub(/^<<-?[\047"]?/, "", heredoc); next
		}
		skipping && $0 == "}" { skipping = 0; print; next }
		skipping { next }
		$0 in cmd {
			print
			print "  # replaced by test/upstream/run.sh: the same, with our chart and local images"
			print "  \"" setup "\" " cmd[$0]
			done[$0] = 1; skipping = 1; next
		}
		{ print }
		END { for (c in cmd) if (!(c in done)) { print "missing case: " c > "/dev/stderr"; exit 1 } }
	' "$file" >"$out"
}

# clean: what one file's cases leave in the cluster that the next file's
# would trip over (the same pod names, namespaces it creates).
clean() {
	kubectl delete namespace test-ns negative-test-ns --ignore-not-found --wait=true >/dev/null
	kubectl -n default delete deployment,pod,secretproviderclass --all --wait=true >/dev/null
}

rm -rf "$work" && mkdir -p "$work/test/bats"
ln -s "$module/test/bats/helpers.bash" "$work/test/bats/helpers.bash"
status=0 summary=()
for file in vault.bats openbao.bats; do
	rewrite "$module/test/bats/$file" "$work/test/bats/$file"
	clean
	say "$file from $module"
	# From the module's root: the suites name their fixtures relative to it.
	(cd "$module" && bats --formatter tap --timing "$work/test/bats/$file") | tee "$work/$file.tap" || status=1
	passed=$(grep -c '^ok ' "$work/$file.tap" || true)
	failed=$(grep -c '^not ok ' "$work/$file.tap" || true)
	replaced=$(ours "$file" | cut -f1 | paste -sd, | sed 's/,/, /g')
	summary+=("$file: $passed of $((passed + failed)) cases passed, $failed failed ($(ours "$file" | wc -l) set-up cases ours: $replaced)")
done
for line in "${summary[@]}"; do say "$line"; done
exit $status
