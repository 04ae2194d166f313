-- Songplays and users by level at the time of the play
SELECT p.level, count(*) AS plays, count(DISTINCT p.user_id) AS users
FROM gold.songplays p
GROUP BY p.level
ORDER BY p.level
