-- Refused by the write policy: a table whose files would be in the warehouse's gold folder.
{{ config(materialized='table', location_root=var('gold_folder', '')) }}
select user_id, level from {{ source('gold', 'users') }}
