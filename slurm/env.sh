# Sourced by every job script here: the job's working directory and Python environment, or one line and exit 2.
#   ADAE_ROOT  the repository (default: the directory sbatch was called from, $SLURM_SUBMIT_DIR)
#   ADAE_VENV  a virtual environment with requirements.txt installed (default: ADAE_ROOT/.venv); where it
#              does not exist, the python on PATH is used if it imports TensorFlow (a module or conda setup)
ADAE_ROOT=${ADAE_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ ! -f "$ADAE_ROOT/run.py" ]; then
    echo "adae: error: $ADAE_ROOT is not the repository root (no run.py); submit with slurm/submit.sh or set ADAE_ROOT" >&2
    exit 2
fi
cd "$ADAE_ROOT"
venv=${ADAE_VENV:-.venv}
if [ -f "$venv/bin/activate" ]; then
    . "$venv/bin/activate"
fi
# found, not imported: a full TensorFlow import here cost every task and collect job seconds before run.py's own
if ! python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)" >/dev/null 2>&1; then
    echo "adae: error: no Python environment with TensorFlow (looked for $venv/bin/activate and the python on PATH); create one: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt, or set ADAE_VENV" >&2
    exit 2
fi
