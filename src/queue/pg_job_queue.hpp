#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "queue/job_queue.hpp"

namespace sluice {

// The job table in PostgreSQL (class PgJobQueue in pg_job_queue.cpp): for several server and
// worker processes on several machines. The same rules as the SQLite queue
// (sqlite_job_queue.hpp), with these differences:
//
// - Connections: synchronous libpq, a pool of up to `pool_size` connections opened on demand
//   (one is opened at once, so a wrong `url` fails here). A connection that broke is closed and
//   replaced on next use; when the first statement on a reused idle connection finds it dead
//   (the server restarted meanwhile), the call is tried once more on a new connection, so a
//   restart costs no caller an error. Statements are prepared once per connection; every
//   value is a bound parameter. A failed statement throws QueueError with the server's message.
// - Clock: `now` is the database's clock (clock_timestamp() in ms), so leases mean the same on
//   every machine; now() asks the database.
// - Claims are one statement (SELECT ... FOR UPDATE SKIP LOCKED inside an UPDATE, the shape of
//   River and Oban) that also appends the `started` events and notifies: concurrent claimers
//   never share a job and never wait for each other. succeed_many is one statement too (an
//   UPDATE ... FROM unnest() of array parameters). Every call but cancel, sweep and migrate
//   (short transactions) is one statement, one round trip, its event rows and NOTIFYs in
//   data-modifying CTEs; the event JSON is the helpers' of job_queue.hpp byte for byte (numbers
//   the database knows only while the statement runs, such as run_at and the attempt, are
//   spliced into the helpers' text, each cut checked against the helper when it is made).
// - Notifications: every committed change of a job sends `NOTIFY sluice_jobs, '<job id>'`
//   (one per job, also for enqueue_many; a heartbeat without event sends none). After
//   start_listening(), a thread of its own LISTENs on a dedicated connection and calls the
//   on_change callback with each id, this process's changes included (they come back through
//   the server), and with "" after each (re)connection, since notifications sent while it was
//   not listening are lost. Before start_listening() (or without it), the callback is called
//   directly after each of this process's own changes commits, like the SQLite queue's.
// - Sweeps run each step (lapsed leases, expired results, retention) in a transaction of its
//   own, at most 1000 jobs per step; an expired key is reported only when, after the commit,
//   no succeeded job refers to it any more (two sweepers expiring two jobs that share a key
//   concurrently may both report it; never neither).
// - migrate() holds a transaction-scoped advisory lock, so processes starting together create
//   the tables once; the indexes are the SQLite queue's (kJobIndexesSql, job_queue.hpp).
std::unique_ptr<JobQueue> open_pg_job_queue(const std::string& url, std::size_t pool_size,
                                            QueueTuning tuning);

}  // namespace sluice
