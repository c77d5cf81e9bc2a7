"""A sweep's worker processes (source.parallel): the flags each worker shares, and the commands that resume a
run or rerun a sub-run."""
from source import parallel


def test_part_argv_drops_what_chooses_the_sub_runs():
    argv = ["--normal", "all", "--seeds", "3", "--jobs=2", "--name", "x", "--resume", "--lr", "2e-4", "--threads", "1"]
    assert parallel.part_argv(argv) == ["--lr", "2e-4"]


def test_resume_and_rerun_commands_name_the_folder_the_run_got():
    """--name twin that became twin_2 (twin was taken) resumes twin_2, not the earlier run; a sub-run is rerun as
    its sweep's job-array task."""
    assert parallel.resume_command(["--epoch", "3", "--name", "twin"], "twin_2") == \
        "python run.py --epoch 3 --name twin_2 --resume"
    assert parallel.resume_command(["--epoch", "3", "--resume"], "embedded_normal1") == \
        "python run.py --epoch 3 --name embedded_normal1 --resume"
    assert parallel.resume_command(["--normal", "2", "--part-of", "s"], "normal2_seed0") == \
        "python run.py --normal 2 --part-of s --resume"
    assert parallel.sub_run_command("python run.py --anomaly all --seeds 3 --name s --jobs 2 --lr 2e-4", "s",
                                    "anomaly", 3, 1) == \
        "python run.py --lr 2e-4 --anomaly 3 --seed 1 --part-of s --resume"
