-- Events still in progress (PROCESSING, PENDING) are a few percent of a log: found
-- through the time index alone, a page of them meant walking thousands of others.
-- Only those rows enter this index, so appends barely pay for it.
CREATE INDEX events_unfinished ON events (ts DESC, pos DESC) WHERE result >= 2;
