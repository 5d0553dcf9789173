-- ads: week x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATEADD(DAY, -(
    DAYOFWEEKISO("__date") + 6 - 6
  ) % 7, "__date") AS "__period",
  "channel",
  SUM("a1") AS "a1",
  SUM("a4") AS "a4",
  MAX("a59") AS "a59",
  SUM("n0") AS "n0"
FROM (
  SELECT
    "__date",
    "channel",
    SUM("clicks") AS "a1",
    SUM("impressions") AS "a4",
    MAX(
      CASE
        WHEN NOT (
          "cost"
        ) IS NULL AND "ts" = "__edge_ad21ed7c678f"
        THEN CAST((
          "cost"
        ) AS DOUBLE)
      END
    ) AS "a59",
    COUNT(*) AS "n0"
  FROM (
    SELECT
      *,
      MAX(CASE WHEN NOT (
        "cost"
      ) IS NULL THEN "ts" END) OVER (
        PARTITION BY DATEADD(DAY, -(
          DAYOFWEEKISO("__date") + 6 - 6
        ) % 7, "__date"), "channel"
      ) AS "__edge_ad21ed7c678f"
    FROM (
      SELECT
        *,
        CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
      FROM "ad_events"
      WHERE
        "ts" < :p2
    ) AS "kpi_all"
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- ads: week x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0), p3='search', p4='search', p5='search'
SELECT
  DATEADD(DAY, -(
    DAYOFWEEKISO("__date") + 6 - 6
  ) % 7, "__date") AS "__period",
  SUM("clicks") AS "a3",
  SUM("impressions") AS "a5",
  MAX(
    CASE
      WHEN NOT (
        "cost"
      ) IS NULL AND "ts" = "__edge_ad21ed7c678f"
      THEN CAST((
        "cost"
      ) AS DOUBLE)
    END
  ) AS "a60",
  COALESCE(
    SUM(
      CASE
        WHEN (
          (
            "channel"
          ) = (
            :p4
          )
        ) AND "__date" = "__edge_add5f1bd0943"
        THEN "cost"
      END
    ),
    0
  ) AS "a63",
  COUNT(*) AS "n2",
  COUNT(CASE WHEN (
    "channel"
  ) = (
    :p5
  ) THEN 1 END) AS "n62"
FROM (
  SELECT
    *,
    MAX(CASE WHEN NOT (
      "cost"
    ) IS NULL THEN "ts" END) OVER (PARTITION BY DATEADD(DAY, -(
      DAYOFWEEKISO("__date") + 6 - 6
    ) % 7, "__date")) AS "__edge_ad21ed7c678f",
    MIN(CASE WHEN (
      "channel"
    ) = (
      :p3
    ) THEN "__date" END) OVER (PARTITION BY DATEADD(DAY, -(
      DAYOFWEEKISO("__date") + 6 - 6
    ) % 7, "__date")) AS "__edge_add5f1bd0943"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_all"
) AS "kpi_rows"
GROUP BY
  1;

-- ads: month x ['channel', 'campaign'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  "channel",
  "campaign",
  SUM("a7") AS "a7",
  SUM("n6") AS "n6"
FROM (
  SELECT
    "__date",
    "channel",
    "campaign",
    SUM("cost") AS "a7",
    COUNT(*) AS "n6"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1,
    2,
    3
) AS "kpi_days"
GROUP BY
  1,
  2,
  3;

-- ads: month x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0), p3=7
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  SUM("cost") AS "a9",
  SUM("revenue") AS "a10",
  SUM(CAST((
    "revenue"
  ) AS DOUBLE) / NULLIF((
    "cost"
  ), 0)) AS "a17",
  SUM((
    (
      "clicks"
    ) % NULLIF((
      :p3
    ), 0) + (
      :p3
    )
  ) % (
    :p3
  )) AS "a18",
  COALESCE(SUM(CASE WHEN "__date" = "__edge_cd5ad84d1034" THEN "clicks" END), 0) AS "a58",
  COUNT(*) AS "n8"
FROM (
  SELECT
    *,
    MAX("__date") OVER (PARTITION BY DATE_TRUNC('MONTH', "__date")) AS "__edge_cd5ad84d1034"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_all"
) AS "kpi_rows"
GROUP BY
  1;

-- ads: quarter x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
  SUM("a12") AS "a12",
  SUM("n11") AS "n11"
FROM (
  SELECT
    "__date",
    SUM("clicks") AS "a12",
    COUNT(*) AS "n11"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1
) AS "kpi_days"
GROUP BY
  1;

-- ads: year x ['utm_source'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('YEAR', DATEADD(MONTH, -3, "__date"))) AS "__period",
  "utm_source",
  SUM("a14") AS "a14",
  SUM("n13") AS "n13"
FROM (
  SELECT
    "__date",
    "utm_source",
    SUM("clicks") AS "a14",
    COUNT(*) AS "n13"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- ads: month x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  "channel",
  COALESCE(SUM(CASE WHEN "__date" = "__edge_cd5ad84d1034" THEN "clicks" END), 0) AS "a57",
  COUNT(*) AS "n56"
FROM (
  SELECT
    *,
    MAX("__date") OVER (PARTITION BY DATE_TRUNC('MONTH', "__date")) AS "__edge_cd5ad84d1034"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_all"
) AS "kpi_rows"
GROUP BY
  1,
  2;

-- ads: year x ['channel', 'time.month_of_year'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('YEAR', DATEADD(MONTH, -3, "__date"))) AS "__period",
  "channel",
  "time.month_of_year",
  SUM("a65") AS "a65",
  SUM("n64") AS "n64"
FROM (
  SELECT
    "__date",
    "channel",
    MONTH("__date") AS "time.month_of_year",
    SUM("clicks") AS "a65",
    COUNT(*) AS "n64"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "ts") AS DATE) AS "__date"
    FROM "ad_events"
    WHERE
      "ts" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1,
    2,
    3
) AS "kpi_days"
GROUP BY
  1,
  2,
  3;

-- sessions: month x [] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  COUNT(CASE WHEN "lead" THEN 1 END) AS "a20",
  COUNT(DISTINCT "visitor_id") AS "a28",
  PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY
    "pageviews") AS "a31",
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY
    "duration_s") AS "a34",
  SUM(CASE WHEN NOT (
    "lead"
  ) THEN "duration_s" END) AS "a38",
  COUNT(CASE WHEN NOT (
    "lead"
  ) THEN "duration_s" END) AS "a39",
  COUNT(*) AS "a51",
  MIN(
    CASE
      WHEN (
        NOT (
          "pageviews"
        ) IS NULL AND (
          "lead"
        )
      )
      AND "ts" = "__edge_484271369646"
      THEN CAST((
        "pageviews"
      ) AS DOUBLE)
    END
  ) AS "a61",
  COUNT(CASE WHEN "lead" THEN 1 END) AS "n19",
  COUNT(*) AS "n27",
  COUNT(CASE WHEN NOT (
    "lead"
  ) THEN 1 END) AS "n37"
FROM (
  SELECT
    *,
    MIN(CASE WHEN NOT (
      "pageviews"
    ) IS NULL AND (
      "lead"
    ) THEN "ts" END) OVER (PARTITION BY DATE_TRUNC('MONTH', "__date")) AS "__edge_484271369646"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
    FROM "sessions"
    WHERE
      "ts" < :p1
  ) AS "kpi_all"
) AS "kpi_rows"
GROUP BY
  1;

-- sessions: month x [] per visitor_id -- p0=2, p1=600, p2=1, p3='Europe/Paris', p4=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p5='Europe/Paris', p6=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p7=datetime.date(2026, 7, 1)
SELECT
  "__period",
  COUNT(CASE WHEN (
    "e0"
  ) >= (
    :p0
  ) THEN 1 END) AS "a67",
  COUNT(
    CASE
      WHEN (
        (
          "e1"
        ) > (
          :p1
        )
      ) AND (
        (
          "e2"
        ) >= (
          :p2
        )
      )
      THEN 1
    END
  ) AS "a69",
  SUM(CAST((
    "e3"
  ) AS DOUBLE)) AS "a73",
  COUNT(CASE WHEN "__new" THEN 1 END) AS "a80",
  CASE
    WHEN DATEADD(MONTH, 2, "__period") <= :p7
    THEN COUNT(CASE WHEN (
      "__new"
    ) AND (
      "__active1"
    ) THEN 1 END)
  END AS "a83"
FROM (
  SELECT
    kpi_me.*,
    CASE
      WHEN DATE_TRUNC('MONTH', "kpi_first"."__first") = "kpi_me"."__period"
      THEN TRUE
      ELSE FALSE
    END AS "__new",
    CASE WHEN NOT "kpi_active1"."__who" IS NULL THEN TRUE ELSE FALSE END AS "__active1"
  FROM (
    SELECT
      DATE_TRUNC('MONTH', "__date") AS "__period",
      "visitor_id" AS "__who",
      COUNT(*) AS "e0",
      COALESCE(SUM("duration_s"), 0) AS "e1",
      COUNT(CASE WHEN "lead" THEN 1 END) AS "e2",
      MAX(
        CASE
          WHEN NOT (
            "duration_s"
          ) IS NULL AND "ts" = "__edge_52adc3dcc09d"
          THEN CAST((
            "duration_s"
          ) AS DOUBLE)
        END
      ) AS "e3"
    FROM (
      SELECT
        *,
        MAX(CASE WHEN NOT (
          "duration_s"
        ) IS NULL THEN "ts" END) OVER (PARTITION BY DATE_TRUNC('MONTH', "__date"), "visitor_id") AS "__edge_52adc3dcc09d"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p3, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p4
      ) AS "kpi_all"
    ) AS "kpi_rows"
    WHERE
      NOT "visitor_id" IS NULL
    GROUP BY
      1,
      2
  ) AS "kpi_me"
  LEFT JOIN (
    SELECT
      *
    FROM (
      SELECT
        "visitor_id" AS "__who",
        "__date" AS "__first",
        ROW_NUMBER() OVER (PARTITION BY "visitor_id" ORDER BY "ts" NULLS FIRST) AS "__rank"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p5, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p6 AND NOT "visitor_id" IS NULL
      ) AS "kpi_history"
    ) AS "kpi_ranked"
    WHERE
      "__rank" = 1
  ) AS "kpi_first"
    ON "kpi_first"."__who" = "kpi_me"."__who"
  LEFT JOIN (
    SELECT DISTINCT
      "visitor_id" AS "__who",
      DATEADD(MONTH, -1, DATE_TRUNC('MONTH', "__date")) AS "__p"
    FROM (
      SELECT
        *,
        CAST(CONVERT_TIMEZONE(:p5, "ts") AS DATE) AS "__date"
      FROM "sessions"
      WHERE
        "ts" < :p6 AND NOT "visitor_id" IS NULL
    ) AS "kpi_history"
  ) AS "kpi_active1"
    ON "kpi_active1"."__who" = "kpi_me"."__who"
    AND "kpi_active1"."__p" = "kpi_me"."__period"
) AS "kpi_entities"
GROUP BY
  1;

-- sessions: week x [] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2=1, p3='social', p4='email', p5=1, p6='social', p7='email'
SELECT
  DATEADD(DAY, -(
    DAYOFWEEKISO("__date") + 6 - 6
  ) % 7, "__date") AS "__period",
  COUNT(CASE WHEN (
    "pageviews"
  ) = (
    :p2
  ) THEN 1 END) AS "a22",
  COUNT(*) AS "a24",
  PERCENTILE_DISC(0.75) WITHIN GROUP (ORDER BY
    "duration_s") AS "a32",
  MAX(CASE WHEN "channel" IN (:p3, :p4) THEN "duration_s" END) AS "a36",
  COUNT(CASE WHEN (
    "pageviews"
  ) = (
    :p5
  ) THEN 1 END) AS "n21",
  COUNT(*) AS "n23",
  COUNT(CASE WHEN "channel" IN (:p6, :p7) THEN 1 END) AS "n35"
FROM (
  SELECT
    *,
    CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
  FROM "sessions"
  WHERE
    "ts" < :p1
) AS "kpi_rows"
GROUP BY
  1;

-- sessions: week x [] per visitor_id -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris', p3=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  "__period",
  SUM(CAST((
    "e0"
  ) AS DOUBLE)) / NULLIF(COUNT(CAST((
    "e0"
  ) AS DOUBLE)), 0) AS "a68",
  SUM(CAST((
    "e1"
  ) AS DOUBLE)) AS "a74",
  COUNT(CASE WHEN "__active-1" THEN 1 END) AS "a81",
  COUNT(*) AS "a82"
FROM (
  SELECT
    kpi_me.*,
    CASE WHEN NOT "kpi_activem1"."__who" IS NULL THEN TRUE ELSE FALSE END AS "__active-1"
  FROM (
    SELECT
      DATEADD(DAY, -(
        DAYOFWEEKISO("__date") + 6 - 6
      ) % 7, "__date") AS "__period",
      "visitor_id" AS "__who",
      COALESCE(SUM("pageviews"), 0) AS "e0",
      COALESCE(SUM(CASE WHEN "__date" = "__edge_f603d23342c6" THEN "pageviews" END), 0) AS "e1"
    FROM (
      SELECT
        *,
        MAX("__date") OVER (
          PARTITION BY DATEADD(DAY, -(
            DAYOFWEEKISO("__date") + 6 - 6
          ) % 7, "__date"), "visitor_id"
        ) AS "__edge_f603d23342c6"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p1
      ) AS "kpi_all"
    ) AS "kpi_rows"
    WHERE
      NOT "visitor_id" IS NULL
    GROUP BY
      1,
      2
  ) AS "kpi_me"
  LEFT JOIN (
    SELECT DISTINCT
      "visitor_id" AS "__who",
      DATEADD(DAY, 7, DATEADD(DAY, -(
        DAYOFWEEKISO("__date") + 6 - 6
      ) % 7, "__date")) AS "__p"
    FROM (
      SELECT
        *,
        CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
      FROM "sessions"
      WHERE
        "ts" < :p3 AND NOT "visitor_id" IS NULL
    ) AS "kpi_history"
  ) AS "kpi_activem1"
    ON "kpi_activem1"."__who" = "kpi_me"."__who"
    AND "kpi_activem1"."__p" = "kpi_me"."__period"
) AS "kpi_entities"
GROUP BY
  1;

-- sessions: month x ['channel'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  "channel",
  COUNT(DISTINCT "visitor_id") AS "a26",
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY
    "duration_s") AS "a33",
  COUNT(*) AS "n25"
FROM (
  SELECT
    *,
    CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
  FROM "sessions"
  WHERE
    "ts" < :p1
) AS "kpi_rows"
GROUP BY
  1,
  2;

-- sessions: month x ['channel'] per visitor_id -- p0=2, p1='Europe/Paris', p2=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p3='Europe/Paris', p4=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  "__period",
  "channel",
  COUNT(CASE WHEN (
    "e0"
  ) >= (
    :p0
  ) THEN 1 END) AS "a66",
  SUM(CAST((
    "e1"
  ) AS DOUBLE)) AS "a72",
  COUNT(CASE WHEN "__new" THEN 1 END) AS "a79"
FROM (
  SELECT
    kpi_me.*,
    CASE
      WHEN DATE_TRUNC('MONTH', "kpi_first"."__first") = "kpi_me"."__period"
      AND "kpi_me"."channel" IS NOT DISTINCT FROM "kpi_first"."__first0"
      THEN TRUE
      ELSE FALSE
    END AS "__new"
  FROM (
    SELECT
      DATE_TRUNC('MONTH', "__date") AS "__period",
      "channel",
      "visitor_id" AS "__who",
      COUNT(*) AS "e0",
      MAX(
        CASE
          WHEN NOT (
            "duration_s"
          ) IS NULL AND "ts" = "__edge_52adc3dcc09d"
          THEN CAST((
            "duration_s"
          ) AS DOUBLE)
        END
      ) AS "e1"
    FROM (
      SELECT
        *,
        MAX(CASE WHEN NOT (
          "duration_s"
        ) IS NULL THEN "ts" END) OVER (PARTITION BY DATE_TRUNC('MONTH', "__date"), "channel", "visitor_id") AS "__edge_52adc3dcc09d"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p1, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p2
      ) AS "kpi_all"
    ) AS "kpi_rows"
    WHERE
      NOT "visitor_id" IS NULL
    GROUP BY
      1,
      2,
      3
  ) AS "kpi_me"
  LEFT JOIN (
    SELECT
      *
    FROM (
      SELECT
        "visitor_id" AS "__who",
        "__date" AS "__first",
        "channel" AS "__first0",
        ROW_NUMBER() OVER (PARTITION BY "visitor_id" ORDER BY "ts" NULLS FIRST, "channel" NULLS FIRST) AS "__rank"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p3, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p4 AND NOT "visitor_id" IS NULL
      ) AS "kpi_history"
    ) AS "kpi_ranked"
    WHERE
      "__rank" = 1
  ) AS "kpi_first"
    ON "kpi_first"."__who" = "kpi_me"."__who"
) AS "kpi_entities"
GROUP BY
  1,
  2;

-- sessions: day x [] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  "__date" AS "__period",
  SUM(CAST((
    "converted"
  ) AS INT)) AS "a30",
  COUNT(*) AS "n29"
FROM (
  SELECT
    *,
    CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
  FROM "sessions"
  WHERE
    "ts" < :p1
) AS "kpi_rows"
GROUP BY
  1;

-- sessions: month x ['time.weekday'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  "time.weekday",
  SUM("a50") AS "a50",
  SUM("n49") AS "n49"
FROM (
  SELECT
    "__date",
    DAYOFWEEKISO("__date") AS "time.weekday",
    COUNT(*) AS "a50",
    COUNT(*) AS "n49"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
    FROM "sessions"
    WHERE
      "ts" < :p1
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- sessions: quarter x ['time.hour'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris'
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
  "time.hour",
  SUM("a53") AS "a53",
  SUM("n52") AS "n52"
FROM (
  SELECT
    "__date",
    HOUR(CONVERT_TIMEZONE(:p2, "ts")) AS "time.hour",
    COUNT(CASE WHEN "converted" THEN 1 END) AS "a53",
    COUNT(CASE WHEN "converted" THEN 1 END) AS "n52"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
    FROM "sessions"
    WHERE
      "ts" < :p1
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- sessions: quarter x [] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
  SUM("a55") AS "a55",
  SUM("n54") AS "n54",
  SUM("n70") AS "n70"
FROM (
  SELECT
    "__date",
    COUNT(CASE WHEN "converted" THEN 1 END) AS "a55",
    COUNT(CASE WHEN "converted" THEN 1 END) AS "n54",
    COUNT(*) AS "n70"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
    FROM "sessions"
    WHERE
      "ts" < :p1
  ) AS "kpi_rows"
  GROUP BY
    1
) AS "kpi_days"
GROUP BY
  1;

-- sessions: quarter x [] per visitor_id -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris', p3=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p4=datetime.date(2026, 7, 1)
SELECT
  "__period",
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY
    CAST((
      "e0"
    ) AS DOUBLE)) AS "a71",
  CASE
    WHEN DATEADD(MONTH, 6, "__period") <= :p4
    THEN SUM(CASE WHEN "__new" THEN CAST((
      "__ahead0"
    ) AS DOUBLE) END)
  END AS "a86",
  COUNT(CASE WHEN "__new" THEN 1 END) AS "a88"
FROM (
  SELECT
    kpi_me.*,
    CASE
      WHEN DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "kpi_first"."__first"))) = "kpi_me"."__period"
      THEN TRUE
      ELSE FALSE
    END AS "__new",
    COALESCE("kpi_ahead0"."__v", 0) AS "__ahead0"
  FROM (
    SELECT
      DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
      "visitor_id" AS "__who",
      COUNT(*) AS "e0"
    FROM (
      SELECT
        *,
        CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
      FROM "sessions"
      WHERE
        "ts" < :p1
    ) AS "kpi_rows"
    WHERE
      NOT "visitor_id" IS NULL
    GROUP BY
      1,
      2
  ) AS "kpi_me"
  LEFT JOIN (
    SELECT
      *
    FROM (
      SELECT
        "visitor_id" AS "__who",
        "__date" AS "__first",
        ROW_NUMBER() OVER (PARTITION BY "visitor_id" ORDER BY "ts" NULLS FIRST) AS "__rank"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p3 AND NOT "visitor_id" IS NULL
      ) AS "kpi_history"
    ) AS "kpi_ranked"
    WHERE
      "__rank" = 1
  ) AS "kpi_first"
    ON "kpi_first"."__who" = "kpi_me"."__who"
  LEFT JOIN (
    SELECT
      "__who",
      "__p",
      SUM("__v") AS "__v"
    FROM (
      SELECT
        "__who",
        DATEADD(MONTH, 0, "__p") AS "__p",
        "__v"
      FROM (
        SELECT
          "visitor_id" AS "__who",
          DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__p",
          CAST(SUM("pageviews") AS DOUBLE) AS "__v"
        FROM (
          SELECT
            *,
            CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
          FROM "sessions"
          WHERE
            "ts" < :p3 AND NOT "visitor_id" IS NULL
        ) AS "kpi_history"
        GROUP BY
          1,
          2
      ) AS "kpi_each"
      UNION ALL
      SELECT
        "__who",
        DATEADD(MONTH, -3, "__p") AS "__p",
        "__v"
      FROM (
        SELECT
          "visitor_id" AS "__who",
          DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__p",
          CAST(SUM("pageviews") AS DOUBLE) AS "__v"
        FROM (
          SELECT
            *,
            CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
          FROM "sessions"
          WHERE
            "ts" < :p3 AND NOT "visitor_id" IS NULL
        ) AS "kpi_history"
        GROUP BY
          1,
          2
      ) AS "kpi_each"
    ) AS "kpi_spread"
    GROUP BY
      1,
      2
  ) AS "kpi_ahead0"
    ON "kpi_ahead0"."__who" = "kpi_me"."__who"
    AND "kpi_ahead0"."__p" = "kpi_me"."__period"
) AS "kpi_entities"
GROUP BY
  1;

-- sessions: quarter x ['channel'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
  "channel",
  SUM("n84") AS "n84"
FROM (
  SELECT
    "__date",
    "channel",
    COUNT(*) AS "n84"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
    FROM "sessions"
    WHERE
      "ts" < :p1
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- sessions: quarter x ['channel'] per visitor_id -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris', p3=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p4=datetime.date(2026, 7, 1)
SELECT
  "__period",
  "channel",
  CASE
    WHEN DATEADD(MONTH, 6, "__period") <= :p4
    THEN SUM(CASE WHEN "__new" THEN CAST((
      "__ahead0"
    ) AS DOUBLE) END)
  END AS "a85",
  COUNT(CASE WHEN "__new" THEN 1 END) AS "a87"
FROM (
  SELECT
    kpi_me.*,
    CASE
      WHEN DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "kpi_first"."__first"))) = "kpi_me"."__period"
      AND "kpi_me"."channel" IS NOT DISTINCT FROM "kpi_first"."__first0"
      THEN TRUE
      ELSE FALSE
    END AS "__new",
    COALESCE("kpi_ahead0"."__v", 0) AS "__ahead0"
  FROM (
    SELECT
      DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__period",
      "channel",
      "visitor_id" AS "__who"
    FROM (
      SELECT
        *,
        CAST(CONVERT_TIMEZONE(:p0, "ts") AS DATE) AS "__date"
      FROM "sessions"
      WHERE
        "ts" < :p1
    ) AS "kpi_rows"
    WHERE
      NOT "visitor_id" IS NULL
    GROUP BY
      1,
      2,
      3
  ) AS "kpi_me"
  LEFT JOIN (
    SELECT
      *
    FROM (
      SELECT
        "visitor_id" AS "__who",
        "__date" AS "__first",
        "channel" AS "__first0",
        ROW_NUMBER() OVER (PARTITION BY "visitor_id" ORDER BY "ts" NULLS FIRST, "channel" NULLS FIRST) AS "__rank"
      FROM (
        SELECT
          *,
          CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
        FROM "sessions"
        WHERE
          "ts" < :p3 AND NOT "visitor_id" IS NULL
      ) AS "kpi_history"
    ) AS "kpi_ranked"
    WHERE
      "__rank" = 1
  ) AS "kpi_first"
    ON "kpi_first"."__who" = "kpi_me"."__who"
  LEFT JOIN (
    SELECT
      "__who",
      "__p",
      SUM("__v") AS "__v"
    FROM (
      SELECT
        "__who",
        DATEADD(MONTH, 0, "__p") AS "__p",
        "__v"
      FROM (
        SELECT
          "visitor_id" AS "__who",
          DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__p",
          CAST(SUM("pageviews") AS DOUBLE) AS "__v"
        FROM (
          SELECT
            *,
            CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
          FROM "sessions"
          WHERE
            "ts" < :p3 AND NOT "visitor_id" IS NULL
        ) AS "kpi_history"
        GROUP BY
          1,
          2
      ) AS "kpi_each"
      UNION ALL
      SELECT
        "__who",
        DATEADD(MONTH, -3, "__p") AS "__p",
        "__v"
      FROM (
        SELECT
          "visitor_id" AS "__who",
          DATEADD(MONTH, 3, DATE_TRUNC('QUARTER', DATEADD(MONTH, -3, "__date"))) AS "__p",
          CAST(SUM("pageviews") AS DOUBLE) AS "__v"
        FROM (
          SELECT
            *,
            CAST(CONVERT_TIMEZONE(:p2, "ts") AS DATE) AS "__date"
          FROM "sessions"
          WHERE
            "ts" < :p3 AND NOT "visitor_id" IS NULL
        ) AS "kpi_history"
        GROUP BY
          1,
          2
      ) AS "kpi_each"
    ) AS "kpi_spread"
    GROUP BY
      1,
      2
  ) AS "kpi_ahead0"
    ON "kpi_ahead0"."__who" = "kpi_me"."__who"
    AND "kpi_ahead0"."__p" = "kpi_me"."__period"
) AS "kpi_entities"
GROUP BY
  1,
  2;

-- tickets: month x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC('MONTH', "__date") AS "__period",
  "channel",
  SUM("a41") AS "a41",
  SUM("a48") AS "a48",
  SUM("n40") AS "n40",
  SUM("n47") AS "n47"
FROM (
  SELECT
    "__date",
    "channel",
    COUNT("first_response_at") AS "a41",
    COUNT(CASE WHEN "first_response_at" IS NULL THEN 1 END) AS "a48",
    COUNT(*) AS "n40",
    COUNT(CASE WHEN "first_response_at" IS NULL THEN 1 END) AS "n47"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "created_at") AS DATE) AS "__date"
    FROM "support_tickets"
    WHERE
      "created_at" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1,
    2
) AS "kpi_days"
GROUP BY
  1,
  2;

-- tickets: week x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATEADD(DAY, -(
    DAYOFWEEKISO("__date") + 6 - 6
  ) % 7, "__date") AS "__period",
  SUM("a45") AS "a45",
  SUM("a46") AS "a46",
  SUM("n44") AS "n44"
FROM (
  SELECT
    "__date",
    SUM(
      CAST(DATEDIFF(MICROSECOND, "created_at", "first_response_at") / 1000000.0 AS DOUBLE) / 60.0
    ) AS "a45",
    COUNT(
      CAST(DATEDIFF(MICROSECOND, "created_at", "first_response_at") / 1000000.0 AS DOUBLE) / 60.0
    ) AS "a46",
    COUNT(*) AS "n44"
  FROM (
    SELECT
      *,
      CAST(CONVERT_TIMEZONE(:p1, :p0, "created_at") AS DATE) AS "__date"
    FROM "support_tickets"
    WHERE
      "created_at" < :p2
  ) AS "kpi_rows"
  GROUP BY
    1
) AS "kpi_days"
GROUP BY
  1;
