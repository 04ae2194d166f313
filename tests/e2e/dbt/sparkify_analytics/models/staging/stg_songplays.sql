-- One row per songplay of gold, with the day it happened on (a view: always current).
select
    songplay_id,
    start_time,
    to_date(start_time) as play_date,
    user_id,
    level,
    song_id,
    session_id
from {{ source('gold', 'songplays') }}
