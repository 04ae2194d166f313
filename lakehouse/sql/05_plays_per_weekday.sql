-- Songplays per ISO weekday (1 = Monday ... 7 = Sunday)
SELECT t.weekday, count(*) AS plays
FROM gold.songplays p
JOIN gold.time t ON p.start_time = t.start_time
GROUP BY t.weekday
ORDER BY t.weekday
