-- Refused by the write policy when built with a target whose schema is the lakehouse's (gold).
{{ config(materialized='table') }}
select user_id, level from {{ source('gold', 'users') }}
