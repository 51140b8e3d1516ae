/* sqlite_app.c: a WASI reactor around SQLite (the amalgamation of npm
 * better-sqlite3), the database workload of the WASI tests and benchmarks.
 *
 * _initialize (WAMR runs it at instantiation) opens an in-memory database,
 * loads a table of 5,000 rows and an index, and answers one warm-up
 * request (its rows discarded): the program's own start-up. The first
 * query SQLite answers pays for work done once and kept (the schema's
 * lookups, allocations its heap then keeps), so start-up does it: a
 * snapshot of the start-up then holds it, and a run that starts up in
 * every request pays it there. Each call of the export `handle` reads
 * one SQL statement from stdin, runs it and writes its rows to stdout
 * (columns joined by '|'); it returns 0, or 1 with SQLite's message on
 * stderr. */
#include <stdio.h>
#include <stdlib.h>

#include "sqlite3.h"

#define ROWS 5000

static sqlite3* g_db;

static void must(int rc, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE) return;
  fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(g_db));
  abort();
}

/* Rows as a request's are made (text of each column), then dropped. */
static int discard_row(void* arg, int n, char** values, char** names) {
  (void)arg;
  (void)n;
  (void)values;
  (void)names;
  return 0;
}

__attribute__((constructor)) static void app_init(void) {
  must(sqlite3_open(":memory:", &g_db), "open");
  must(sqlite3_exec(g_db,
                    "CREATE TABLE orders(id INTEGER PRIMARY KEY, city TEXT, "
                    "product TEXT, qty INTEGER, cents INTEGER);"
                    "BEGIN;",
                    NULL, NULL, NULL),
       "schema");
  static const char* cities[] = {"Oslo", "Lima", "Pune", "Kobe", "Graz", "Cork", "Fès"};
  static const char* products[] = {"tea", "rope", "lamp", "soap", "ink", "salt"};
  sqlite3_stmt* ins;
  must(sqlite3_prepare_v2(g_db, "INSERT INTO orders VALUES(?,?,?,?,?)", -1, &ins, NULL),
       "prepare");
  unsigned x = 12345; /* a fixed sequence: every instance holds the same rows */
  for (int i = 1; i <= ROWS; i++) {
    x = x * 1103515245u + 12345u;
    sqlite3_bind_int(ins, 1, i);
    sqlite3_bind_text(ins, 2, cities[(x >> 8) % 7], -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, products[(x >> 12) % 6], -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 4, 1 + (int)((x >> 16) % 20));
    sqlite3_bind_int(ins, 5, 50 + (int)((x >> 4) % 5000));
    must(sqlite3_step(ins), "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  must(sqlite3_exec(g_db, "COMMIT; CREATE INDEX by_city ON orders(city, product);", NULL,
                    NULL, NULL),
       "index");
  /* Both kinds of query the requests make: through the index, and an
   * aggregate (on one city: the paths, not the cost of the whole table). */
  must(sqlite3_exec(g_db,
                    "SELECT id, product, qty FROM orders WHERE city = 'Lima' AND "
                    "product = 'rope' ORDER BY id LIMIT 5;"
                    "SELECT city, count(*), sum(qty*cents) FROM orders WHERE city = 'Lima' "
                    "GROUP BY city ORDER BY city;",
                    discard_row, NULL, NULL),
       "warm-up");
}

static int print_row(void* arg, int n, char** values, char** names) {
  (void)arg;
  (void)names;
  for (int i = 0; i < n; i++) printf("%s%s", i ? "|" : "", values[i] ? values[i] : "NULL");
  printf("\n");
  return 0;
}

__attribute__((export_name("handle"))) int handle(void) {
  char sql[4096];
  size_t n = fread(sql, 1, sizeof sql - 1, stdin);
  sql[n] = 0;
  char* err = NULL;
  int rc = sqlite3_exec(g_db, sql, print_row, NULL, &err);
  fflush(stdout);
  if (rc != SQLITE_OK) {
    fprintf(stderr, "sqlite: %s\n", err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return 1;
  }
  return 0;
}
