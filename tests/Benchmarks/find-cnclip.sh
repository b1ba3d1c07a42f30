# Sourced by the benchmark scripts here: `find_cnclip [CONFIGURATION]` sets the array `cnclip` to the command they
# time: CNCLIP (split on spaces) when it is set, else the cnclip built under src/ChineseClip.Cli/bin/CONFIGURATION
# (default Debug), which is built first when it is not there.
find_cnclip() {
    local configuration=${1:-Debug} root
    if [ -n "${CNCLIP:-}" ]; then
        read -r -a cnclip <<<"$CNCLIP"
        return
    fi
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    cnclip=("$root/src/ChineseClip.Cli/bin/$configuration/net10.0/linux-x64/cnclip")
    if [ ! -x "${cnclip[0]}" ]; then
        dotnet build -c "$configuration" "$root/src/ChineseClip.Cli" >&2 || { echo "$0: building src/ChineseClip.Cli failed" >&2; exit 2; }
    fi
}
