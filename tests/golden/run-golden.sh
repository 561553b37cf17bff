#!/bin/sh
# Golden tests in the libvirt style: every line of tests/golden/cases.txt
# runs cyrange on one input and compares its combined stdout+stderr with
# tests/golden/expected/<name>.out and its exit status with the table.
#
#   tests/golden/run-golden.sh [NAME...]   run all cases, or only these
#
# Environment:
#   CYRANGE            command under test (default build/cyrange); may carry
#                      arguments, e.g. "valgrind -q --error-exitcode=99
#                      build/cyrange"
#   GOLDEN_REGENERATE  when 1, rewrite the expected outputs from the actual
#                      ones (exit statuses stay checked against the table, so
#                      a changed status still fails).  Never done otherwise.
#
# Table lines: `name command exit [input]`.  Commands:
#   validate      cyrange validate INPUT
#   plan          cyrange plan INPUT --teams 2
#   plan-json     cyrange plan INPUT --teams 2 --json
#   plan-default  cyrange plan INPUT             (the scenario's team count)
# INPUT is tests/golden/cases/<input>.json, or a repository path when the
# input column contains a '/'.  Without an input column it is <name>; for
# plan-json cases named "<base>-json" whose own file does not exist, <base>.
#
# Runs from the repository root so that paths in outputs stay stable.
# Ends with exactly one summary line "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2

GDIR=tests/golden
TABLE=$GDIR/cases.txt
CYRANGE=${CYRANGE:-build/cyrange}
REGEN=${GOLDEN_REGENERATE:-0}

ONLY="$*"

first=${CYRANGE%% *}
if ! command -v "$first" >/dev/null 2>&1; then
    echo "run-golden.sh: '$first' not found (build it with make, or set CYRANGE)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [ ! -f "$TABLE" ]; then
    echo "run-golden.sh: $TABLE is missing" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/golden.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT INT TERM

passed=0
failed=0
regenerated=0

fail() { # name reason
    failed=$((failed + 1))
    echo "FAIL $1: $2"
}

wanted() { # name
    [ -z "$ONLY" ] && return 0
    for w in $ONLY; do
        [ "$w" = "$1" ] && return 0
    done
    return 1
}

# Inputs referenced by the table, to spot case files nobody runs.
: >"$TMP/used"
seen_names=" "

while read -r name cmd want input rest; do
    case "$name" in
    '' | '#'*) continue ;;
    esac
    if [ -z "$want" ] || [ -n "$rest" ]; then
        fail "$name" "malformed line in $TABLE (want: name command exit [input])"
        continue
    fi
    case "$seen_names" in
    *" $name "*) fail "$name" "listed twice in $TABLE"; continue ;;
    esac
    seen_names="$seen_names$name "
    if [ -n "$input" ]; then
        case "$input" in
        */*) file=$input ;;
        *) file=$GDIR/cases/$input.json ;;
        esac
    else
        file=$GDIR/cases/$name.json
        if [ "$cmd" = plan-json ] && [ ! -e "$file" ]; then
            case "$name" in
            *-json) file=$GDIR/cases/${name%-json}.json ;;
            esac
        fi
    fi
    echo "$file" >>"$TMP/used"
    wanted "$name" || continue

    case "$cmd" in
    validate) set -- validate "$file" ;;
    plan) set -- plan "$file" --teams 2 ;;
    plan-json) set -- plan "$file" --teams 2 --json ;;
    plan-default) set -- plan "$file" ;;
    *) fail "$name" "unknown command '$cmd' in $TABLE"; continue ;;
    esac

    exp=$GDIR/expected/$name.out
    act=$TMP/$name.out
    # shellcheck disable=SC2086
    $CYRANGE "$@" >"$act" 2>&1 </dev/null
    got=$?

    ok=1
    if [ "$REGEN" = 1 ]; then
        if [ ! -f "$exp" ] || ! cmp -s "$exp" "$act"; then
            cp "$act" "$exp"
            regenerated=$((regenerated + 1))
            echo "regenerated $exp"
        fi
    elif [ ! -f "$exp" ]; then
        fail "$name" "no expected output $exp (GOLDEN_REGENERATE=1 creates it)"
        sed 's/^/    /' "$act"
        continue
    elif ! cmp -s "$exp" "$act"; then
        ok=0
        fail "$name" "output differs from $exp (cyrange $*)"
        diff -u "$exp" "$act" | sed 's/^/    /'
    fi
    if [ "$got" != "$want" ]; then
        if [ "$ok" = 1 ]; then
            fail "$name" "exit status $got, expected $want (cyrange $*)"
        else
            echo "    (and exit status $got, expected $want)"
        fi
        ok=0
    fi
    [ "$ok" = 1 ] && passed=$((passed + 1))
done <"$TABLE"

# Every case input and every expected output belongs to a table line.
if [ -z "$ONLY" ]; then
    for f in "$GDIR"/cases/*.json; do
        [ -e "$f" ] || continue
        grep -qxF "$f" "$TMP/used" || fail "$(basename "$f" .json)" \
            "$f is not used by any line of $TABLE"
    done
    for f in "$GDIR"/expected/*.out; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .out)
        case "$seen_names" in
        *" $n "*) ;;
        *) fail "$n" "$f belongs to no line of $TABLE" ;;
        esac
    done
fi

[ "$regenerated" -gt 0 ] && echo "$regenerated expected output(s) regenerated; review them with git diff"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
