-- Top 10 songs by plays (matched songs only)
SELECT s.title, a.name AS artist, count(*) AS plays
FROM gold.songplays p
JOIN gold.songs s ON p.song_id = s.song_id
JOIN gold.artists a ON p.artist_id = a.artist_id
GROUP BY s.title, a.name
ORDER BY plays DESC, s.title
LIMIT 10
