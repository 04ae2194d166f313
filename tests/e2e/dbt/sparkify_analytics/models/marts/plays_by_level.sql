-- One row per level: plays, listeners and what the level costs (a table, rebuilt by every run).
select
    p.level,
    l.label,
    l.monthly_price,
    count(*) as plays,
    count(distinct p.user_id) as listeners
from {{ ref('stg_songplays') }} p
join {{ ref('levels') }} l on l.level = p.level
group by p.level, l.label, l.monthly_price
