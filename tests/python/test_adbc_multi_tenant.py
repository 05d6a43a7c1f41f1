"""The multi-tenant ad application through ADBC and pandas: its schema as PostgreSQL writes it
(bigserial keys, composite primary keys, foreign keys, jsonb, inet, numeric), CSV files
generated here and ingested, per-tenant dashboards compared with pandas on the same data,
and UPDATE, DELETE and a transaction per tenant."""

import random

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight
import pandas as pd
import pyarrow as pa
import pytest

SCHEMA = [
    "CREATE TABLE companies (id bigserial PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE ads (id bigserial, company_id bigint REFERENCES companies (id), "
    "name text NOT NULL, budget numeric(20,10), PRIMARY KEY (company_id, id))",
    "CREATE TABLE clicks (id bigserial, company_id bigint, ad_id bigint, "
    "clicked_at timestamp NOT NULL, user_ip inet NOT NULL, user_data jsonb NOT NULL, "
    "PRIMARY KEY (company_id, id), FOREIGN KEY (company_id, ad_id) REFERENCES ads (company_id, id))",
    "SELECT create_distributed_table('companies', 'id', shard_count => 6)",
    "SELECT create_distributed_table('ads', 'company_id', colocate_with => 'companies')",
    "SELECT create_distributed_table('clicks', 'company_id', colocate_with => 'companies')",
]


def connect(url):
    return flight.connect(
        url,
        db_kwargs={adbc_driver_flightsql.DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"},
        autocommit=True,
    )


def generated(tmp_path):
    """Companies, ads and clicks as CSV files, and the same rows as pandas frames."""
    rng = random.Random(7)
    companies = pd.DataFrame({"id": range(1, 16), "name": [f"tenant {i}" for i in range(1, 16)]})
    ads = pd.DataFrame([
        {"id": c * 100 + k, "company_id": c, "name": f"ad {c}-{k}", "budget": f"{rng.randint(1, 9999)}.25"}
        for c in companies["id"] for k in range(1, rng.randint(2, 6))
    ])
    rows = []
    for ad in ads.itertuples():
        for _ in range(rng.randint(0, 40)):
            rows.append({
                "company_id": int(ad.company_id), "ad_id": int(ad.id),
                "clicked_at": f"2026-0{rng.randint(1, 3)}-{rng.randint(10, 28)} "
                              f"{rng.randint(10, 23)}:00:00",
                "user_ip": rng.choice(["10.0.0.1", f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}."
                                                   f"{rng.randint(1, 254)}"]),
                "user_data": f'{{"is_mobile": {rng.choice(["true", "false"])}, '
                             f'"location": "{rng.choice(["NL", "DE", "US"])}"}}',
            })
    clicks = pd.DataFrame(rows)
    clicks.insert(0, "id", range(1, len(rows) + 1))
    for name, frame in (("companies", companies), ("ads", ads), ("clicks", clicks)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    return companies, ads, clicks


def test_multi_tenant_application(local_cluster, tmp_path):
    companies, ads, clicks = generated(tmp_path)
    with connect(local_cluster) as conn, conn.cursor() as cur:
        for statement in SCHEMA:
            cur.execute(statement)
        # Loaded from the CSV files, typed as the tables declare.
        for name in ("companies", "ads", "clicks"):
            frame = pd.read_csv(tmp_path / f"{name}.csv", dtype=str)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            cur.execute(f"SELECT * FROM {name} LIMIT 0")
            target = cur.fetch_arrow_table().schema
            cur.adbc_ingest(name, table.select(target.names).cast(target), mode="append")
        cur.execute("SELECT count(*) FROM clicks")
        assert cur.fetchone()[0] == len(clicks)

        # A duplicate key is refused with 23505.
        with pytest.raises(Exception, match="clicks_pkey"):
            cur.execute("INSERT INTO clicks (id, company_id, ad_id, clicked_at, user_ip, user_data) "
                        f"SELECT id, company_id, ad_id, clicked_at, user_ip, user_data FROM clicks "
                        f"WHERE id = 1")

        # Dashboard: each tenant's ads ranked by clicks.
        dashboard = cur.execute(
            "SELECT a.company_id, a.id, count(c.id) AS clicks, "
            "rank() OVER (PARTITION BY a.company_id ORDER BY count(c.id) DESC, a.id) AS position "
            "FROM ads a LEFT JOIN clicks c ON c.company_id = a.company_id AND c.ad_id = a.id "
            "GROUP BY a.company_id, a.id ORDER BY a.company_id, position").fetch_df()
        counted = clicks.groupby("ad_id").size()
        expected = ads.assign(clicks=ads["id"].map(counted).fillna(0).astype(int))
        expected = expected.sort_values(["company_id", "clicks", "id"],
                                        ascending=[True, False, True])
        expected["position"] = expected.groupby("company_id").cumcount() + 1
        assert dashboard["id"].tolist() == expected["id"].tolist()
        assert dashboard["clicks"].tolist() == expected["clicks"].tolist()
        assert dashboard["position"].tolist() == expected["position"].tolist()

        # Mobile clicks per tenant and month, from the jsonb column.
        monthly = cur.execute(
            "SELECT company_id, CAST(date_part('month', clicked_at) AS bigint) AS month, "
            "count(*) AS mobile FROM clicks WHERE user_data->>'is_mobile' = 'true' "
            "GROUP BY 1, 2 ORDER BY 1, 2").fetch_df()
        mobile = clicks[clicks["user_data"].str.contains('"is_mobile": true')]
        expected_monthly = mobile.groupby(
            [mobile["company_id"], pd.to_datetime(mobile["clicked_at"]).dt.month]).size()
        assert monthly["mobile"].tolist() == expected_monthly.tolist()

        # A tenant's budgets change and one of its ads goes, in one transaction.
        tenant = int(ads["company_id"].iloc[0])
        cur.execute("BEGIN")
        cur.execute(f"UPDATE ads SET budget = budget * 2 WHERE company_id = {tenant}")
        cur.execute(f"DELETE FROM clicks WHERE company_id = {tenant} AND user_ip = '10.0.0.1'")
        cur.execute(f"DELETE FROM clicks WHERE company_id = {tenant} "
                    f"AND clicked_at < TIMESTAMP '2026-02-01 00:00:00'")
        cur.execute("COMMIT")
        budget = cur.execute(
            f"SELECT CAST(sum(budget) AS double) FROM ads WHERE company_id = {tenant}").fetchone()[0]
        assert budget == pytest.approx(
            2 * ads[ads["company_id"] == tenant]["budget"].astype(float).sum())
        left = cur.execute(f"SELECT count(*) FROM clicks WHERE company_id = {tenant}").fetchone()[0]
        mine = clicks[clicks["company_id"] == tenant]
        assert left == int((pd.to_datetime(mine["clicked_at"]) >= "2026-02-01").sum()) \
            - int(((mine["user_ip"] == "10.0.0.1")
                   & (pd.to_datetime(mine["clicked_at"]) >= "2026-02-01")).sum())
        # The other tenants are untouched.
        others = cur.execute(
            f"SELECT count(*) FROM clicks WHERE company_id <> {tenant}").fetchone()[0]
        assert others == int((clicks["company_id"] != tenant).sum())


def test_parameterized_writes_upserts_and_joined_updates(local_cluster, tmp_path):
    """What an application's data layer sends through ADBC: UPDATE and DELETE with `?`
    parameters, an upsert of a batch of rows, and UPDATE ... FROM with RETURNING, checked
    against pandas computing the same changes."""
    companies, ads, _ = generated(tmp_path)
    with connect(local_cluster) as conn, conn.cursor() as cur:
        for statement in SCHEMA[:2] + SCHEMA[3:5]:
            cur.execute(statement)
        for name, frame in (("companies", companies), ("ads", ads)):
            table = pa.Table.from_pandas(frame.astype(str), preserve_index=False)
            cur.execute(f"SELECT * FROM {name} LIMIT 0")
            target = cur.fetch_arrow_table().schema
            cur.adbc_ingest(name, table.select(target.names).cast(target), mode="append")
        expected = ads.assign(budget=ads["budget"].astype(float)).set_index(["company_id", "id"])

        # UPDATE and DELETE with parameters.
        tenant, ad = (int(v) for v in ads[["company_id", "id"]].iloc[0])
        cur.execute("UPDATE ads SET name = ? WHERE company_id = ? AND id = ?",
                    ("renamed", tenant, ad))
        assert cur.fetchone()[0] == 1
        expected.loc[(tenant, ad), "name"] = "renamed"
        gone = ads[ads["company_id"] == tenant].iloc[-1]
        cur.execute("DELETE FROM ads WHERE company_id = ? AND id = ? RETURNING name",
                    (tenant, int(gone["id"])))
        assert cur.fetchall() == [(gone["name"],)]
        expected = expected.drop((tenant, int(gone["id"])))

        # An upsert: one stored ad renamed, one new ad inserted, RETURNING both.
        cur.execute(
            "INSERT INTO ads (company_id, id, name, budget) VALUES (?, ?, ?, 1), (?, ?, ?, 1) "
            "ON CONFLICT (company_id, id) DO UPDATE SET name = excluded.name "
            "RETURNING id, name",
            (tenant, ad, "upserted", tenant, 999999, "brand new"))
        assert sorted(cur.fetchall()) == [(ad, "upserted"), (999999, "brand new")]
        expected.loc[(tenant, ad), "name"] = "upserted"
        # A parameter in DO UPDATE SET, after those of the proposed row.
        cur.execute(
            "INSERT INTO ads (company_id, id, name, budget) VALUES (?, ?, 'unused', 1) "
            "ON CONFLICT (company_id, id) DO UPDATE SET name = ?",
            (tenant, ad, "set by a parameter"))
        assert cur.fetchone()[0] == 1
        expected.loc[(tenant, ad), "name"] = "set by a parameter"
        expected.loc[(tenant, 999999), ["name", "budget"]] = ["brand new", 1.0]

        # UPDATE ... FROM a co-located table: each tenant's budgets scaled by its id.
        cur.execute(
            "UPDATE ads SET budget = ads.budget * 2 FROM companies c "
            "WHERE c.id = ads.company_id AND c.id % 2 = 0 RETURNING ads.company_id, ads.id")
        changed = sorted(cur.fetchall())
        even = expected.index.get_level_values("company_id") % 2 == 0
        assert changed == sorted((int(c), int(i)) for c, i in expected.index[even])
        expected.loc[even, "budget"] *= 2

        got = cur.execute(
            "SELECT company_id, id, name, CAST(budget AS double) AS budget FROM ads "
            "ORDER BY company_id, id").fetch_df().set_index(["company_id", "id"])
        want = expected[["name", "budget"]].sort_index()
        assert got.index.tolist() == want.index.tolist()
        assert got["name"].tolist() == want["name"].tolist()
        assert got["budget"].tolist() == pytest.approx(want["budget"].tolist())
