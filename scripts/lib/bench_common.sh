# What the scripts that time minivgg against PyTorch share: the CPU line they print, and a
# virtual environment with PyTorch in it. Source it; it reads VENV, INSTALL and
# BENCH_PIP_ARGS, and needs a `die` function.

# Prints one line naming the CPU and the instruction sets that pick minivgg's and oneDNN's
# kernels; sets `cores`.
describe_cpu() {
    local model family number
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
    [[ -n $model ]] || model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
    family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
    number=$(sed -n 's/^model[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
    cores=$(nproc)
    echo "CPU: ${model:-unknown} (family ${family:-?} model ${number:-?}), $cores CPUs online, avx512f: $(has_flag avx512f), avx512_bf16: $(has_flag avx512_bf16), amx_bf16: $(has_flag amx_bf16), avx2: $(has_flag avx2), fma: $(has_flag fma)"
}
has_flag() { grep -qw "$1" /proc/cpuinfo && echo yes || echo no; }

# Makes sure $VENV has a working torch and the pip packages given as arguments (pip specs),
# installing them unless INSTALL=0; sets PY.
ensure_torch() {
    PY=$VENV/bin/python
    local imports="import torch; torch.randn(2, 2) @ torch.randn(2, 2)" spec
    for spec in "$@"; do
        [[ $spec == torch==* || $spec == numpy ]] || imports+="; import ${spec%%[=<>]*}"
    done
    works() { "$PY" -c "$imports" >/dev/null 2>&1; }
    [[ -x $PY ]] && works && return
    ((INSTALL)) || die "no working $* in $VENV (run without --no-install)"
    if [[ ! -x $PY ]]; then
        echo "creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    echo "installing $* into $VENV (about 5 GB, a few minutes)..." >&2
    local started=$SECONDS
    # shellcheck disable=SC2086 # BENCH_PIP_ARGS is a list of words on purpose
    "$VENV/bin/pip" install --quiet ${BENCH_PIP_ARGS:-} "$@"
    works || die "$* installed but '$imports' fails; try: $PY -c '$imports'"
    echo "installed in $((SECONDS - started)) s, $(du -sh "$VENV" | cut -f1)" >&2
}
