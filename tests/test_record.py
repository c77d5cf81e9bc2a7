"""Records and configs (source.record): the configs' defaults and round trip, an older schema refused."""
import json

import run
from source.flags import parse_args


def test_configs_take_their_owners_defaults_and_round_trip():
    """A RunConfig from flags: --arch reference's batch where no --batch is given, the flags given (--widths,
    --anomaly, --seeds) as asked; a RunConfig and a Summary survive JSON unchanged (tuples included)."""
    from source.record import RunConfig, Summary
    args = parse_args(["--arch", "reference", "--anomaly", "3", "--seeds", "2", "--widths", "8,16"])
    config = RunConfig.from_flags(args, "python run.py")
    assert config.model.arch == "reference" and config.model.widths == (8, 16) and config.training.batch == 32
    assert config.data.protocol == "anomaly" and config.data.digits == (3,) and config.digit_seeds() == [(3, 0), (3, 1)]
    assert config.one(3, 1).digit_seeds() == [(3, 1)]
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    summary = Summary(name="x", config=config.one(3, 1), data={"digit": 3}, metrics={"anomaly_score": "x_dgx",
                      "threshold": 1.5, "AUROC": 0.9}, baselines={"PCA": {"AUROC": 0.8}}, baseline_info={},
                      precision={}, final_epoch=None, dev_curve=[], timings={}, versions={}, machine={"cpu": "c"})
    back = Summary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert back == summary and back.seed == 1 and back.digit == 3 and back.threshold == 1.5
    assert [m for m, _ in back.methods()] == ["ADAE (x_dgx)", "PCA"]


def test_a_record_of_an_older_schema_is_refused_with_one_line(tmp_path, capsys):
    """--resume of a run whose config.json has the flat layout of schema 1: exit 2, one line naming the schema."""
    folder = tmp_path / "c" / "old"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"arch": "paper", "lr": 2e-4}))
    code = run.main(["--data", "embedded", "--name", "old", "--resume", "--results", str(tmp_path / "r"),
                     "--logdir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "schema 1" in err, err
