-- One row per day and user: plays that day. Incremental: each run merges the days since the latest one it holds.
{{ config(materialized='incremental', incremental_strategy='merge', unique_key=['play_date', 'user_id']) }}
select
    play_date,
    user_id,
    count(*) as plays
from {{ ref('stg_songplays') }}
{% if is_incremental() %}
where play_date >= (select max(play_date) from {{ this }})
{% endif %}
group by play_date, user_id
