-- ads: week x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_SUB(`__date`, INTERVAL (MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5 - 6, 7)) DAY) AS `__period`,
  `channel`,
  SUM(`a1`) AS `a1`,
  SUM(`a4`) AS `a4`,
  MAX(`a59`) AS `a59`,
  SUM(`n0`) AS `n0`
FROM (
  SELECT
    `__date`,
    `channel`,
    SUM(`clicks`) AS `a1`,
    SUM(`impressions`) AS `a4`,
    MAX(
      CASE
        WHEN NOT (
          `cost`
        ) IS NULL AND `ts` = `__edge_ad21ed7c678f`
        THEN CAST((
          `cost`
        ) AS FLOAT64)
      END
    ) AS `a59`,
    COUNT(*) AS `n0`
  FROM (
    SELECT
      *,
      MAX(CASE WHEN NOT (
        `cost`
      ) IS NULL THEN `ts` END) OVER (
        PARTITION BY DATE_SUB(`__date`, INTERVAL (MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5 - 6, 7)) DAY), `channel`
      ) AS `__edge_ad21ed7c678f`
    FROM (
      SELECT
        *,
        DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
      FROM `ad_events`
      WHERE
        `ts` < @p2
    ) AS `kpi_all`
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- ads: week x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0), p3='search', p4='search', p5='search'
SELECT
  DATE_SUB(`__date`, INTERVAL (MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5 - 6, 7)) DAY) AS `__period`,
  SUM(`clicks`) AS `a3`,
  SUM(`impressions`) AS `a5`,
  MAX(
    CASE
      WHEN NOT (
        `cost`
      ) IS NULL AND `ts` = `__edge_ad21ed7c678f`
      THEN CAST((
        `cost`
      ) AS FLOAT64)
    END
  ) AS `a60`,
  COALESCE(
    SUM(
      CASE
        WHEN (
          (
            `channel`
          ) = (
            @p4
          )
        ) AND `__date` = `__edge_add5f1bd0943`
        THEN `cost`
      END
    ),
    0
  ) AS `a63`,
  COUNT(*) AS `n2`,
  COUNT(CASE WHEN (
    `channel`
  ) = (
    @p5
  ) THEN 1 END) AS `n62`
FROM (
  SELECT
    *,
    MAX(CASE WHEN NOT (
      `cost`
    ) IS NULL THEN `ts` END) OVER (
      PARTITION BY DATE_SUB(`__date`, INTERVAL (MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5 - 6, 7)) DAY)
    ) AS `__edge_ad21ed7c678f`,
    MIN(CASE WHEN (
      `channel`
    ) = (
      @p3
    ) THEN `__date` END) OVER (
      PARTITION BY DATE_SUB(`__date`, INTERVAL (MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5 - 6, 7)) DAY)
    ) AS `__edge_add5f1bd0943`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_all`
) AS `kpi_rows`
GROUP BY
  1;

-- ads: month x ['channel', 'campaign'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC(`__date`, MONTH) AS `__period`,
  `channel`,
  `campaign`,
  SUM(`a7`) AS `a7`,
  SUM(`n6`) AS `n6`
FROM (
  SELECT
    `__date`,
    `channel`,
    `campaign`,
    SUM(`cost`) AS `a7`,
    COUNT(*) AS `n6`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_rows`
  GROUP BY
    1,
    2,
    3
) AS `kpi_days`
GROUP BY
  1,
  2,
  3;

-- ads: month x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0), p3=7
SELECT
  DATE_TRUNC(`__date`, MONTH) AS `__period`,
  SUM(`cost`) AS `a9`,
  SUM(`revenue`) AS `a10`,
  SUM(CAST((
    `revenue`
  ) AS FLOAT64) / NULLIF((
    `cost`
  ), 0)) AS `a17`,
  SUM(MOD(MOD(`clicks`, NULLIF((
    @p3
  ), 0)) + (
    @p3
  ), @p3)) AS `a18`,
  COALESCE(SUM(CASE WHEN `__date` = `__edge_cd5ad84d1034` THEN `clicks` END), 0) AS `a58`,
  COUNT(*) AS `n8`
FROM (
  SELECT
    *,
    MAX(`__date`) OVER (PARTITION BY DATE_TRUNC(`__date`, MONTH)) AS `__edge_cd5ad84d1034`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_all`
) AS `kpi_rows`
GROUP BY
  1;

-- ads: quarter x [] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__period`,
  SUM(`a12`) AS `a12`,
  SUM(`n11`) AS `n11`
FROM (
  SELECT
    `__date`,
    SUM(`clicks`) AS `a12`,
    COUNT(*) AS `n11`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_rows`
  GROUP BY
    1
) AS `kpi_days`
GROUP BY
  1;

-- ads: year x ['utm_source'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), YEAR), INTERVAL 3 MONTH) AS `__period`,
  `utm_source`,
  SUM(`a14`) AS `a14`,
  SUM(`n13`) AS `n13`
FROM (
  SELECT
    `__date`,
    `utm_source`,
    SUM(`clicks`) AS `a14`,
    COUNT(*) AS `n13`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- ads: month x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC(`__date`, MONTH) AS `__period`,
  `channel`,
  COALESCE(SUM(CASE WHEN `__date` = `__edge_cd5ad84d1034` THEN `clicks` END), 0) AS `a57`,
  COUNT(*) AS `n56`
FROM (
  SELECT
    *,
    MAX(`__date`) OVER (PARTITION BY DATE_TRUNC(`__date`, MONTH)) AS `__edge_cd5ad84d1034`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_all`
) AS `kpi_rows`
GROUP BY
  1,
  2;

-- ads: year x ['channel', 'time.month_of_year'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), YEAR), INTERVAL 3 MONTH) AS `__period`,
  `channel`,
  `time.month_of_year`,
  SUM(`a65`) AS `a65`,
  SUM(`n64`) AS `n64`
FROM (
  SELECT
    `__date`,
    `channel`,
    EXTRACT(MONTH FROM `__date`) AS `time.month_of_year`,
    SUM(`clicks`) AS `a65`,
    COUNT(*) AS `n64`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`ts`, @p1), @p0) AS `__date`
    FROM `ad_events`
    WHERE
      `ts` < @p2
  ) AS `kpi_rows`
  GROUP BY
    1,
    2,
    3
) AS `kpi_days`
GROUP BY
  1,
  2,
  3;

-- sessions: month x []: rows read (bigquery has no exact percentile function)

-- sessions: week x []: rows read (bigquery has no discrete percentile function)

-- sessions: month x ['channel']: rows read (bigquery has no exact percentile function)

-- sessions: day x [] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  `__date` AS `__period`,
  SUM(CAST((
    `converted`
  ) AS INT64)) AS `a30`,
  COUNT(*) AS `n29`
FROM (
  SELECT
    *,
    DATE(`ts`, @p0) AS `__date`
  FROM `sessions`
  WHERE
    `ts` < @p1
) AS `kpi_rows`
GROUP BY
  1;

-- sessions: month x ['time.weekday'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATE_TRUNC(`__date`, MONTH) AS `__period`,
  `time.weekday`,
  SUM(`a50`) AS `a50`,
  SUM(`n49`) AS `n49`
FROM (
  SELECT
    `__date`,
    MOD(EXTRACT(DAYOFWEEK FROM `__date`) + 5, 7) + 1 AS `time.weekday`,
    COUNT(*) AS `a50`,
    COUNT(*) AS `n49`
  FROM (
    SELECT
      *,
      DATE(`ts`, @p0) AS `__date`
    FROM `sessions`
    WHERE
      `ts` < @p1
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- sessions: quarter x ['time.hour'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris'
SELECT
  DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__period`,
  `time.hour`,
  SUM(`a53`) AS `a53`,
  SUM(`n52`) AS `n52`
FROM (
  SELECT
    `__date`,
    EXTRACT(HOUR FROM TIMESTAMP(DATETIME(`ts`, @p2))) AS `time.hour`,
    COUNT(CASE WHEN `converted` THEN 1 END) AS `a53`,
    COUNT(CASE WHEN `converted` THEN 1 END) AS `n52`
  FROM (
    SELECT
      *,
      DATE(`ts`, @p0) AS `__date`
    FROM `sessions`
    WHERE
      `ts` < @p1
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- sessions: quarter x []: rows read (bigquery has no exact percentile function)

-- sessions: quarter x ['channel'] -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris'))
SELECT
  DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__period`,
  `channel`,
  SUM(`n84`) AS `n84`
FROM (
  SELECT
    `__date`,
    `channel`,
    COUNT(*) AS `n84`
  FROM (
    SELECT
      *,
      DATE(`ts`, @p0) AS `__date`
    FROM `sessions`
    WHERE
      `ts` < @p1
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- sessions: quarter x ['channel'] per visitor_id -- p0='Europe/Paris', p1=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p2='Europe/Paris', p3=datetime.datetime(2026, 7, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='Europe/Paris')), p4=datetime.date(2026, 7, 1)
SELECT
  `__period`,
  `channel`,
  CASE
    WHEN DATE_ADD(`__period`, INTERVAL 6 MONTH) <= @p4
    THEN SUM(CASE WHEN `__new` THEN CAST((
      `__ahead0`
    ) AS FLOAT64) END)
  END AS `a85`,
  COUNT(CASE WHEN `__new` THEN 1 END) AS `a87`
FROM (
  SELECT
    kpi_me.*,
    CASE
      WHEN DATE_ADD(DATE_TRUNC(DATE_SUB(`kpi_first`.`__first`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) = `kpi_me`.`__period`
      AND `kpi_me`.`channel` IS NOT DISTINCT FROM `kpi_first`.`__first0`
      THEN TRUE
      ELSE FALSE
    END AS `__new`,
    COALESCE(`kpi_ahead0`.`__v`, 0) AS `__ahead0`
  FROM (
    SELECT
      DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__period`,
      `channel`,
      `visitor_id` AS `__who`
    FROM (
      SELECT
        *,
        DATE(`ts`, @p0) AS `__date`
      FROM `sessions`
      WHERE
        `ts` < @p1
    ) AS `kpi_rows`
    WHERE
      NOT `visitor_id` IS NULL
    GROUP BY
      1,
      2,
      3
  ) AS `kpi_me`
  LEFT JOIN (
    SELECT
      *
    FROM (
      SELECT
        `visitor_id` AS `__who`,
        `__date` AS `__first`,
        `channel` AS `__first0`,
        ROW_NUMBER() OVER (PARTITION BY `visitor_id` ORDER BY `ts`, `channel`) AS `__rank`
      FROM (
        SELECT
          *,
          DATE(`ts`, @p2) AS `__date`
        FROM `sessions`
        WHERE
          `ts` < @p3 AND NOT `visitor_id` IS NULL
      ) AS `kpi_history`
    ) AS `kpi_ranked`
    WHERE
      `__rank` = 1
  ) AS `kpi_first`
    ON `kpi_first`.`__who` = `kpi_me`.`__who`
  LEFT JOIN (
    SELECT
      `__who`,
      `__p`,
      SUM(`__v`) AS `__v`
    FROM (
      SELECT
        `__who`,
        DATE_ADD(`__p`, INTERVAL 0 MONTH) AS `__p`,
        `__v`
      FROM (
        SELECT
          `visitor_id` AS `__who`,
          DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__p`,
          CAST(SUM(`pageviews`) AS FLOAT64) AS `__v`
        FROM (
          SELECT
            *,
            DATE(`ts`, @p2) AS `__date`
          FROM `sessions`
          WHERE
            `ts` < @p3 AND NOT `visitor_id` IS NULL
        ) AS `kpi_history`
        GROUP BY
          1,
          2
      ) AS `kpi_each`
      UNION ALL
      SELECT
        `__who`,
        DATE_ADD(`__p`, INTERVAL -3 MONTH) AS `__p`,
        `__v`
      FROM (
        SELECT
          `visitor_id` AS `__who`,
          DATE_ADD(DATE_TRUNC(DATE_SUB(`__date`, INTERVAL 3 MONTH), QUARTER), INTERVAL 3 MONTH) AS `__p`,
          CAST(SUM(`pageviews`) AS FLOAT64) AS `__v`
        FROM (
          SELECT
            *,
            DATE(`ts`, @p2) AS `__date`
          FROM `sessions`
          WHERE
            `ts` < @p3 AND NOT `visitor_id` IS NULL
        ) AS `kpi_history`
        GROUP BY
          1,
          2
      ) AS `kpi_each`
    ) AS `kpi_spread`
    GROUP BY
      1,
      2
  ) AS `kpi_ahead0`
    ON `kpi_ahead0`.`__who` = `kpi_me`.`__who`
    AND `kpi_ahead0`.`__p` = `kpi_me`.`__period`
) AS `kpi_entities`
GROUP BY
  1,
  2;

-- tickets: month x ['channel'] -- p0='Europe/Paris', p1='UTC', p2=datetime.datetime(2026, 6, 30, 22, 0)
SELECT
  DATE_TRUNC(`__date`, MONTH) AS `__period`,
  `channel`,
  SUM(`a41`) AS `a41`,
  SUM(`a48`) AS `a48`,
  SUM(`n40`) AS `n40`,
  SUM(`n47`) AS `n47`
FROM (
  SELECT
    `__date`,
    `channel`,
    COUNT(`first_response_at`) AS `a41`,
    COUNT(CASE WHEN `first_response_at` IS NULL THEN 1 END) AS `a48`,
    COUNT(*) AS `n40`,
    COUNT(CASE WHEN `first_response_at` IS NULL THEN 1 END) AS `n47`
  FROM (
    SELECT
      *,
      DATE(TIMESTAMP(`created_at`, @p1), @p0) AS `__date`
    FROM `support_tickets`
    WHERE
      `created_at` < @p2
  ) AS `kpi_rows`
  GROUP BY
    1,
    2
) AS `kpi_days`
GROUP BY
  1,
  2;

-- tickets: week x []: rows read (bigquery has no interval type for minutes())
