-- Top 10 users by songplays
SELECT u.user_id, u.first_name, u.last_name, u.level, count(*) AS plays
FROM gold.songplays p
JOIN gold.users u ON p.user_id = u.user_id
GROUP BY u.user_id, u.first_name, u.last_name, u.level
ORDER BY plays DESC, u.user_id
LIMIT 10
