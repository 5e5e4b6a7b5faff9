"""``radbill customer import`` / ``export``: round trips, presets, every validation error, all or nothing."""

import csv
import io
import os
import stat

from sqlalchemy import func, select

from billingd.customer_files import COLUMNS
from schema.tables import customers, ledger_entries

HEADER = ",".join(COLUMNS)


def count_customers(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(customers)).scalar()


def rows_of(text: str) -> dict[str, dict]:
    return {row["username"]: row for row in csv.DictReader(io.StringIO(text))}


def test_export_then_import_round_trips_with_opening_balances(cli, engine, tmp_path):
    cli("demo")
    cli("zone", "add", "DHK")
    exported = tmp_path / "customers.csv"
    cli("customer", "export", str(exported))
    assert stat.S_IMODE(os.stat(exported).st_mode) == 0o600  # passwords inside
    before = rows_of(exported.read_text())
    assert before["demo"]["password"] == "demo" and before["demo"]["balance"] == "1000.00"
    renamed = (
        exported.read_text()
        .replace("demo,demo,", "demo2,demo,")
        .replace("expired,expired,", "expired2,expired,")
    )
    renamed += "carol,secret,Hotspot 5M,reseller1,DHK,aa-bb-cc-dd-ee-ff,10.9.0.7,2027-01-31,-20.50,disabled,Carol,+880171,Road 1\n"
    (tmp_path / "in.csv").write_text(renamed)

    result = cli("customer", "import", str(tmp_path / "in.csv"))
    assert result.output == "imported 3 of 3 customers, opening balance 979.50\n"
    after = rows_of(cli("customer", "export").output)
    for old, new in (("demo", "demo2"), ("expired", "expired2")):
        assert {**before[old], "username": new} == after[new]
    carol = after["carol"]
    assert (carol["owner"], carol["zone"], carol["mac"], carol["static_ip"]) == (
        "reseller1",
        "DHK",
        "AA:BB:CC:DD:EE:FF",
        "10.9.0.7",
    )
    assert carol["balance"] == "-20.50" and carol["status"] == "disabled"
    assert carol["expires_at"] == "2027-01-31T18:00:00+00:00"  # the end of that day in Asia/Dhaka
    with engine.connect() as connection:
        kinds = connection.execute(select(ledger_entries.c.kind)).scalars().all()
    assert kinds.count("opening_balance") == 1
    assert cli("ledger", "verify").exit_code == 0
    # Imported customers are customers like any other: radiusd's policy sees them as such.
    assert '"reason": "ok"' in cli("--json", "why", "demo2").output


def test_every_validation_error_is_reported_and_nothing_is_written(cli, engine, tmp_path):
    cli("demo")
    lines = [
        HEADER,
        ",pw,PPPoE 10M,,,,,,,,,,",  # 2 username missing
        "bad name!,pw,PPPoE 10M,,,,,,,,,,",  # 3
        "nopass,,PPPoE 10M,,,,,,,,,,",  # 4
        "noowner,pw,PPPoE 10M,ghost,,,,,,,,,",  # 5
        "nopackage,pw,Gold,,,,,,,,,,",  # 6
        "nozone,pw,PPPoE 10M,,XX,,,,,,,,",  # 7
        "badmac,pw,PPPoE 10M,,,zz:zz,,,,,,,",  # 8
        "badip,pw,PPPoE 10M,,,,10.0.0.300,,,,,,",  # 9
        "baddate,pw,PPPoE 10M,,,,,31/12/2026,,,,,",  # 10
        "badmoney,pw,PPPoE 10M,,,,,,12.345,,,,",  # 11
        "badstatus,pw,PPPoE 10M,,,,,,,frozen,,,",  # 12
        "twice,pw,PPPoE 10M,,,,10.0.0.1,,,,,,",  # 13
        "TWICE,pw,PPPoE 10M,,,,10.0.0.1,,,,,,",  # 14: both the name and the IP repeat row 13
        "demo,pw,PPPoE 10M,,,,,,,,,,",  # 15 taken in the database
        "fine,pw,PPPoE 10M,,,,,,,,,,",  # 16
    ]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    before = count_customers(engine)
    result = cli("customer", "import", str(tmp_path / "in.csv"), expect_exit=1)
    report = [line.split("  ", 2) for line in result.output.splitlines()[1:-1]]
    assert [(row, column) for row, column, _ in report] == [
        ("2", "username"),
        ("3", "username"),
        ("4", "password"),
        ("5", "owner"),
        ("6", "package"),
        ("7", "zone"),
        ("8", "mac"),
        ("9", "static_ip"),
        ("10", "expires_at"),
        ("11", "balance"),
        ("12", "status"),
        ("14", "username"),
        ("14", "static_ip"),
        ("15", "username"),
    ]
    assert report[11][2] == "twice repeats row 13" and report[13][2] == "demo is already taken"
    assert (
        result.output.splitlines()[-1]
        == f"radbill: error: 14 problems in {tmp_path / 'in.csv'}: nothing imported"
    )
    assert count_customers(engine) == before

    dry = cli(
        "customer", "import", str(tmp_path / "in.csv"), "--dry-run", "--skip-bad", str(tmp_path / "bad.csv")
    )
    assert dry.output.endswith("would import 2 of 15 customers, opening balance 0.00\n")
    assert count_customers(engine) == before and not (tmp_path / "bad.csv").exists()

    skipped = cli("customer", "import", str(tmp_path / "in.csv"), "--skip-bad", str(tmp_path / "bad.csv"))
    assert skipped.output.endswith(
        "imported 2 of 15 customers, opening balance 0.00; 13 bad rows written to "
        + str(tmp_path / "bad.csv")
        + "\n"
    )
    assert count_customers(engine) == before + 2
    bad = list(csv.DictReader(open(tmp_path / "bad.csv")))
    assert [row["username"] for row in bad][:3] == ["", "bad name!", "nopass"] and len(bad) == 13
    assert stat.S_IMODE(os.stat(tmp_path / "bad.csv").st_mode) == 0o600


def test_an_unknown_column_refuses_the_file(cli, tmp_path):
    cli("demo")
    (tmp_path / "in.csv").write_text("username,password,plan\nx,y,z\n")
    output = cli("customer", "import", str(tmp_path / "in.csv"), expect_exit=1).output
    assert "1  plan  unknown column" in output and "is not a radbill file" in output
    assert "cannot read" in cli("customer", "import", str(tmp_path / "missing.csv"), expect_exit=1).output


MIKROTIK_EXPORT = r"""# dec/02/2026 10:00:00 by RouterOS 7.16
/ppp secret
add name=rahim password=r4him profile="PPPoE 10M" service=pppoe
add caller-id=11:22:33:44:55:66 comment="Karim Road 5" disabled=yes name=karim \
    password=k4rim profile="PPPoE 20M 100G" remote-address=10.20.0.9 service=pppoe
add name=pooled password=p profile="PPPoE 10M" remote-address=pool-a
"""

MIKROTIK_CSV = """"Name","Password","Service","Caller ID","Profile","Local Address","Remote Address","Comment"
"selim","s3lim","pppoe","","PPPoE 10M","","10.20.0.10","Selim"
"""

FREERADIUS_DUMP = """id,username,attribute,op,value
1,faruk,Cleartext-Password,:=,f4ruk
2,faruk,Calling-Station-Id,==,AA-00-00-00-00-01
3,faruk,Expiration,:=,Jan 31 2027 00:00:00
4,nasir,Cleartext-Password,:=,n4sir
1,nasir,Framed-IP-Address,=,10.30.0.2
"""


def test_presets_mikrotik_export_and_csv_and_freeradius(cli, tmp_path):
    cli("demo")
    (tmp_path / "secrets.rsc").write_text(MIKROTIK_EXPORT)
    assert (
        "imported 3 of 3"
        in cli("customer", "import", str(tmp_path / "secrets.rsc"), "--format", "mikrotik").output
    )
    (tmp_path / "secrets.csv").write_text(MIKROTIK_CSV)
    assert (
        "imported 1 of 1"
        in cli("customer", "import", str(tmp_path / "secrets.csv"), "--format", "mikrotik").output
    )
    (tmp_path / "radcheck.csv").write_text(FREERADIUS_DUMP)
    missing = cli(
        "customer", "import", str(tmp_path / "radcheck.csv"), "--format", "freeradius", expect_exit=1
    )
    assert "2  package  missing (give one, or --package)" in missing.output
    options = ("--format", "freeradius", "--package", "Hotspot 5M", "--owner", "reseller1")
    assert "imported 2 of 2" in cli("customer", "import", str(tmp_path / "radcheck.csv"), *options).output
    exported = rows_of(cli("customer", "export").output)
    karim = exported["karim"]
    assert (
        karim["password"],
        karim["package"],
        karim["mac"],
        karim["static_ip"],
        karim["status"],
        karim["name"],
    ) == (
        "k4rim",
        "PPPoE 20M 100G",
        "11:22:33:44:55:66",
        "10.20.0.9",
        "disabled",
        "Karim Road 5",
    )
    assert exported["pooled"]["static_ip"] == "" and exported["selim"]["static_ip"] == "10.20.0.10"
    faruk = exported["faruk"]
    assert (faruk["owner"], faruk["mac"], faruk["expires_at"]) == (
        "reseller1",
        "AA:00:00:00:00:01",
        "2027-01-31T00:00:00+00:00",
    )
    assert exported["nasir"]["static_ip"] == "10.30.0.2"


def test_import_and_export_are_scoped_by_tenancy(cli, tmp_path):
    cli("demo")
    (tmp_path / "in.csv").write_text(
        HEADER + "\nx1,pw,PPPoE 10M,admin,,,,,,,,,\nx2,pw,PPPoE 10M,subreseller1,,,,,,,,,\n"
    )
    refused = cli("--as", "reseller1", "customer", "import", str(tmp_path / "in.csv"), expect_exit=1).output
    assert "2  owner  no operator 'admin' that you can see sells to customers" in refused
    assert "3  owner" in refused  # a descendant's customers need manage_descendants
    # The export carries passwords: the admin side's alone (issue 11: no secret in any output).
    assert "only the admin side" in cli("--as", "reseller1", "customer", "export", expect_exit=1).output
    cli("operator", "add", "noc1", "--role", "noc")
    assert "is not allowed to" in cli("--as", "noc1", "customer", "export", expect_exit=1).output
