import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { compareRoutes, compileRoute, matchRoute } from "../../local/functionsHost/routes";

describe("Functions route templates in the local host", () => {
  it("match literal segments case-insensitively and decode parameters", () => {
    const route = compileRoute("clusters/{cluster}/nodes/{node}/checkin");
    assert.deepEqual(matchRoute(route, "Clusters/dev/NODES/aks-node%2D1/checkin"), { cluster: "dev", node: "aks-node-1" });
    assert.equal(matchRoute(route, "clusters/dev/nodes/n1"), undefined);
    assert.equal(matchRoute(route, "clusters/dev/nodes/n1/checkin/extra"), undefined);
  });

  it("honour optional parameters, catch-alls and constraints", () => {
    assert.deepEqual(matchRoute(compileRoute("items/{id?}"), "items"), {});
    assert.deepEqual(matchRoute(compileRoute("files/{*path}"), "files/a/b/c"), { path: "a/b/c" });
    assert.equal(matchRoute(compileRoute("items/{id:int}"), "items/abc"), undefined);
    assert.deepEqual(matchRoute(compileRoute("items/{id:int:min(10)}"), "items/12"), { id: "12" });
    assert.equal(matchRoute(compileRoute("items/{id:int:min(10)}"), "items/9"), undefined);
  });

  it("order a literal before a constrained parameter before a plain one before a catch-all", () => {
    const routes = ["items/{*rest}", "items/{name}", "items/{id:int}", "items/special"].map(compileRoute);
    assert.deepEqual(
      routes.sort(compareRoutes).map((r) => r.template),
      ["items/special", "items/{id:int}", "items/{name}", "items/{*rest}"],
    );
  });
});
