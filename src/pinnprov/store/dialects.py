"""SQL dialects: how the one schema definition (pinnprov/store/schema.py) becomes DDL for SQLite and MonetDB.

Only what differs lives here: type names, identifier quoting, the parameter style, and how "create if
missing" is spelled. Portable SQL elsewhere (views, named queries) is written once with `:name` parameters
and double-quoted identifiers where MonetDB has a keyword (epoch, name, value, seed); `Dialect.sql()`
adapts it to the driver's parameter style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Keywords of the MonetDB SQL scanner (sql/server/sql_scan.c, keywords_insert), upper case. Some are accepted
# as identifiers by the grammar's non_reserved_word rule, but quoting costs nothing and does not depend on the
# server release, so every identifier in this set is double-quoted in MonetDB DDL.
MONETDB_KEYWORDS = frozenset(
    """
    ABSENT ACCORDING ACTION ADD ADMIN AFTER AGGREGATE ALL ALTER ALWAYS ANALYZE AND ANY AS ASC ASYMMETRIC ATOMIC
    AUTHORIZATION AUTO_COMMIT AUTO_INCREMENT BEFORE BEGIN BEST BETWEEN BIG BIGINT BIGSERIAL BINARY BLOB BY CACHE
    CALL CASCADE CASE CAST CENTURY CHAIN CHAR CHARACTER CHECK CLIENT CLOB COALESCE COLUMN COMMENT COMMIT COMMITTED
    CONSTRAINT CONTENT CONTINUE CONVERT COPY CORRESPONDING CREATE CROSS CUBE CUME_DIST CURRENT CURRENT_DATE
    CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_TIMEZONE CURRENT_USER CYCLE DATA DATE DAY
    DEALLOCATE DEBUG DEC DECADE DECIMAL DECLARE DEFAULT DELETE DELIMITERS DENSE_RANK DESC DIAGNOSTICS DISTINCT DO
    DOCUMENT DOUBLE DOW DOY DROP EACH EFFORT ELEMENT ELSE ELSEIF ENCRYPTED END ENDIAN EPOCH ESCAPE EVERY EXCEPT
    EXCLUDE EXEC EXECUTE EXISTS EXPLAIN EXTERNAL EXTRACT FALSE FILTER FIRST FIRST_VALUE FLOAT FOLLOWING FOR
    FOREIGN FROM FULL FUNCTION FWF GENERATED GEOMETRY GLOBAL GRANT GROUP GROUPING GROUPS HAVING HOUR HUGEINT
    IDENTITY ID IF ILIKE IMPRINTS IN INCREMENT INDEX INNER INSERT INT INTEGER INTERSECT INTERVAL INTO IS ISOLATION
    JOIN KEY LAG LANGUAGE LARGE LAST LAST_VALUE LATERAL LEAD LEFT LEVEL LIKE LIMIT LINESTRING LITTLE LOADER LOCAL
    LOCALTIME LOCALTIMESTAMP LOCATION MATCH MATCHED MAXVALUE MEDIUMINT MERGE MINMAX MINUTE MINVALUE MONTH
    MULTILINESTRING MULTIPOINT MULTIPOLYGON NAME NAMESPACE NATIVE NATURAL NEW NEXT NIL NO NOT NOW NTH_VALUE NTILE
    NULL NULLIF NULLS NUMERIC OBJECT OF OFFSET OLD ON ONLY OPTION OPTIONS OR ORDER ORDERED OTHERS OUTER OVER
    PARTIAL PARTITION PASSING PASSWORD PATH PERCENT_RANK PLAN POINT POLYGON POSITION PRECEDING PRECISION PREP
    PREPARE PRESERVE PRIMARY PRIVILEGES PROCEDURE PUBLIC QUARTER RANGE RANK READ REAL RECORDS REF REFERENCES
    REFERENCING RELEASE REMOTE RENAME REPEATABLE REPLACE REPLICA RESTART RESTRICT RETURN RETURNING RETURNS REVOKE
    RIGHT ROLE ROLLBACK ROLLUP ROW ROWS ROW_NUMBER SAMPLE SAVEPOINT SCHEMA SECOND SEED SELECT SEQUENCE SERIAL
    SERIALIZABLE SERVER SESSION SESSION_USER SET SETS SIMPLE SIZE SMALLINT SOME SPLIT_PART START STATEMENT STDIN
    STDOUT STORAGE STRING STRIP SUBSTRING SYMMETRIC TABLE TEMP TEMPORARY TEXT THEN TIES TIME TIMESTAMP TINYINT
    TINYTEXT TO TRACE TRANSACTION TRIGGER TRUE TRUNCATE TYPE UESCAPE UNBOUNDED UNCOMMITTED UNENCRYPTED UNION
    UNIQUE UPDATE URI USER USING VALUE VALUES VARCHAR VARYING VIEW WEEK WHEN WHERE WHILE WHITESPACE WINDOW WITH
    WORK WRITE XMLAGG XMLATTRIBUTES XMLCOMMENT XMLCONCAT XMLDOCUMENT XMLELEMENT XMLFOREST XMLNAMESPACES XMLPARSE
    XMLPI XMLQUERY XMLSCHEMA XMLTEXT XMLVALIDATE YEAR ZONE
    """.split()  # noqa: SIM905 - one word per keyword, wrapped like the source list
)

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class Dialect:
    """Everything dialect-specific about writing SQL; instances: SQLITE, MONETDB."""

    name: str
    types: dict[str, str]  # logical type -> SQL type; "{n}" is replaced by the length
    keywords: frozenset[str]
    paramstyle: str  # "named" (sqlite3 :name) or "pyformat" (pymonetdb %(name)s)
    if_not_exists: bool  # CREATE TABLE/INDEX IF NOT EXISTS is reliable

    def quote(self, identifier: str) -> str:
        """Quote an identifier only when the dialect has it as a keyword (keeps DDL readable)."""
        return f'"{identifier}"' if identifier.upper() in self.keywords else identifier

    def type_of(self, logical: str, length: int = 0) -> str:
        return self.types[logical].replace("{n}", str(length))

    def sql(self, portable: str) -> str:
        """Adapt portable SQL written with `:name` parameters to this driver's parameter style."""
        if self.paramstyle == "named":
            return portable
        return _PARAM.sub(lambda match: f"%({match.group(1)})s", portable.replace("%", "%%"))


SQLITE = Dialect(
    name="sqlite",
    types={
        "string": "TEXT",
        "clob": "TEXT",
        "integer": "INTEGER",
        "bigint": "INTEGER",
        "double": "REAL",
        "time": "REAL",  # Unix seconds (UTC); see schema.py for why
    },
    # SQLite needs none of our names quoted; "epoch" etc. are quoted in portable SQL anyway.
    keywords=frozenset(),
    paramstyle="named",
    if_not_exists=True,
)

MONETDB = Dialect(
    name="monetdb",
    types={
        "string": "VARCHAR({n})",
        "clob": "CLOB",
        "integer": "INTEGER",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "time": "DOUBLE",
    },
    keywords=MONETDB_KEYWORDS,
    paramstyle="pyformat",
    # MonetDB has CREATE TABLE IF NOT EXISTS but not CREATE INDEX IF NOT EXISTS; store/migrations.py checks
    # the catalog (sys.tables, sys.columns, sys.idxs) instead, which works on every release.
    if_not_exists=False,
)

DIALECTS = {dialect.name: dialect for dialect in (SQLITE, MONETDB)}


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r} (choose from: {', '.join(sorted(DIALECTS))})") from None
