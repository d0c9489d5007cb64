#!/usr/bin/env bash
# The last release's services: the commit compat/baseline names, built in debug from a
# `git worktree` of this clone into the same cargo target folder as HEAD's (the
# dependencies are shared, only the workspace's crates build again), and kept in
# TARGET/compat-baseline/COMMIT/ (inventory, order, pricing, identity), so every script
# that needs them (scripts/compat.sh, scripts/compat-matrix.sh) builds them once: the
# folder is reused while compat/baseline names the same commit and the toolchain is the
# same (its file `built` says which), and the folders of other commits are removed.
#
# The build gives the workspace's crates one codegen unit less (255), so their artifacts
# and fingerprints are HEAD's neighbours, not HEAD's own: cargo keys both on the crate's
# place in its workspace, and a baseline built over HEAD's artifacts could later pass for
# HEAD. The binaries are copied out (target/debug's links go back to HEAD's at HEAD's next
# `cargo build`, and a later build may rewrite the files they point to).
#
# Sourced; the clone needs the baseline's commit (not a shallow clone).
#
#   baseline_commit                  sets BASELINE_COMMIT from compat/baseline (fails, saying
#                                    why, when this clone does not have it)
#   baseline_worktree DIR            checks BASELINE_COMMIT out at DIR (a detached worktree;
#                                    remove it with baseline_worktree_remove DIR)
#   baseline_binaries TARGET [TREE]  sets BASELINE_BIN_DIR, building the binaries first unless
#                                    they are there already (from TREE, a worktree at the
#                                    commit, or one of its own, removed after);
#                                    BASELINE_BUILD_S is the build's seconds (0: reused)

BASELINE_COMMIT= BASELINE_BIN_DIR= BASELINE_BUILD_S=0
BASELINE_SERVICES=(inventory pricing order identity)

baseline_commit() {
  BASELINE_COMMIT=$(grep -v '^[[:space:]]*#' compat/baseline | tr -d '[:space:]')
  if ! git cat-file -e "$BASELINE_COMMIT^{commit}" 2>/dev/null; then
    echo "compat/baseline names '$BASELINE_COMMIT', a commit this clone does not have (a shallow clone? git fetch --unshallow)" >&2
    return 1
  fi
}

baseline_worktree() {
  git worktree add --quiet --detach "$1" "$BASELINE_COMMIT"
}

baseline_worktree_remove() {
  if [ -d "$1" ]; then git worktree remove --force "$1" || true; fi
  git worktree prune || true
}

baseline_binaries() {
  local target=$1 tree=${2:-} own_tree= started=$SECONDS stamp dir member service overrides=()
  [ -n "$BASELINE_COMMIT" ] || baseline_commit || return 1
  dir=$target/compat-baseline/$BASELINE_COMMIT
  stamp="$BASELINE_COMMIT $(rustc -V)"
  BASELINE_BIN_DIR=$dir BASELINE_BUILD_S=0
  if [ -f "$dir/built" ] && [ "$(cat "$dir/built")" = "$stamp" ]; then
    echo "the baseline's services (${BASELINE_COMMIT:0:12}) are built already: $dir"
    return 0
  fi
  echo "building the baseline's services (${BASELINE_COMMIT:0:12}, debug, in $target)"
  if [ -z "$tree" ]; then
    own_tree=$(mktemp -d)
    tree=$own_tree/baseline
    baseline_worktree "$tree" || return 1
  fi
  for member in $(cd "$tree" && cargo metadata --format-version 1 --no-deps --offline | jq -r '.packages[].name'); do
    overrides+=(--config "profile.dev.package.$member.codegen-units=255")
  done
  if ! (cd "$tree" && CARGO_TARGET_DIR=$target cargo build --locked --bins --quiet "${overrides[@]}"); then
    [ -z "$own_tree" ] || { baseline_worktree_remove "$tree"; rm -rf "$own_tree"; }
    return 1
  fi
  rm -rf "$dir.partial" "$target"/compat-baseline/*/
  mkdir -p "$dir.partial"
  for service in "${BASELINE_SERVICES[@]}"; do
    cp "$target/debug/$service" "$dir.partial/$service"
  done
  echo "$stamp" >"$dir.partial/built"
  mv "$dir.partial" "$dir"
  [ -z "$own_tree" ] || { baseline_worktree_remove "$tree"; rm -rf "$own_tree"; }
  BASELINE_BUILD_S=$((SECONDS - started))
  echo "the baseline's services built in $BASELINE_BUILD_S s: $dir"
}
