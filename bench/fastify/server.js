// The Fastify + pg baseline: the same path and body as the service's execute route, the
// service's own SQL (BENCH_STATEMENTS, psycopg2 "%s" placeholders turned into $1, $2 ...), a
// pool of the service's size (BENCH_POOL_MAX). Connection settings come from libpq's PG*
// variables. No auth, no validation, no logs: the stack's own cost, as the floor measures ours.
"use strict";

const fastify = require("fastify")({ logger: false });
const pg = require("pg");

pg.types.setTypeParser(20, (value) => Number(value)); // bigint ids as numbers, as the service

const pool = new pg.Pool({ max: Number(process.env.BENCH_POOL_MAX) });

function numbered(statement) {
  let n = 0;
  return statement.replace(/%s/g, () => `$${++n}`);
}

const statements = Object.fromEntries(
  Object.entries(JSON.parse(process.env.BENCH_STATEMENTS)).map(([k, v]) => [k, numbered(v)])
);

function argumentsOf(operation, params) {
  if (operation === "get") return [params.id];
  if (operation === "list") {
    return [params.filter.category, (params.limit ?? 50) + 1, params.offset ?? 0];
  }
  const values = params.values;
  return [values.title, values.category, values.price];
}

fastify.post("/v1/projects/:projectId/datasources/execute", async (request, reply) => {
  const { operation } = request.body;
  const params = request.body.params ?? {};
  const { rows } = await pool.query(statements[operation], argumentsOf(operation, params));

  const meta = { requestId: crypto.randomUUID(), operation };
  if (operation === "list") {
    const limit = params.limit ?? 50;
    meta.page = { limit, offset: 0, hasMore: rows.length > limit };
    return { ok: true, data: rows.slice(0, limit), meta };
  }
  if (rows.length === 0) {
    reply.code(404);
    return { ok: false, error: { code: "NOT_FOUND", message: "no such row" } };
  }
  return { ok: true, data: rows[0], meta };
});

fastify.listen({ host: "127.0.0.1", port: Number(process.env.BENCH_PORT) }).catch((error) => {
  console.error(error);
  process.exit(1);
});

process.on("SIGTERM", () => fastify.close().then(() => pool.end()).then(() => process.exit(0)));
