-- Songplays per hour of day (UTC)
SELECT t.hour, count(*) AS plays
FROM gold.songplays p
JOIN gold.time t ON p.start_time = t.start_time
GROUP BY t.hour
ORDER BY t.hour
