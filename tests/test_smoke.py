from pathlib import Path


def test_valid_bank_file_loads(write_bank_csv, schema) -> None:
    from credit.loading import load_bank_csv

    path: Path = write_bank_csv(120, gzip=True)
    assert load_bank_csv(path, schema).n_rows == 120
