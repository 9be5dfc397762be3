import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { handledAksEventTypes } from "../../shared/upgrade/aksEvents";

/** The Event Grid wiring in infra/ (Bicep and its ARM twin) delivers what functions/aksEvents.ts handles. */

const repo = resolve(__dirname, "../..");
const read = (p: string) => readFileSync(join(repo, p), "utf8");
type Json = Record<string, any>;
const template: Json = JSON.parse(read("infra/main.json"));
const deployment = (template.resources as Json[]).find((r) => r.copy?.name === "aksEvents")!;

describe("infra: AKS events to the aksEvents function", () => {
  it("deploys one Event Grid system topic per AKS cluster, on the cluster", () => {
    assert.equal(deployment.copy.count, "[length(variables('aksClusters'))]");
    assert.equal(deployment.resourceGroup, "[split(variables('aksClusters')[copyIndex()].aksResourceId, '/')[4]]");
    const topic = (deployment.properties.template.resources as Json[]).find((r) => r.type === "Microsoft.EventGrid/systemTopics")!;
    assert.equal(topic.properties.topicType, "Microsoft.ContainerService.ManagedClusters");
    assert.equal(topic.properties.source, "[resourceId('Microsoft.ContainerService/managedClusters', parameters('clusterName'))]");
  });

  it("subscribes it to the aksEvents function, Event Grid schema, only when asked (the function must exist first)", () => {
    const sub = (deployment.properties.template.resources as Json[]).find((r) => r.type === "Microsoft.EventGrid/systemTopics/eventSubscriptions")!;
    assert.equal(sub.condition, "[parameters('subscribe')]");
    assert.equal(deployment.properties.parameters.subscribe.value, "[equals(parameters('aksEventSubscriptions'), 'on')]");
    assert.equal(template.parameters.aksEventSubscriptions.defaultValue, "off");
    assert.equal(sub.properties.destination.endpointType, "AzureFunction");
    assert.equal(sub.properties.destination.properties.resourceId, "[format('{0}/functions/aksEvents', parameters('functionAppId'))]");
    assert.equal(sub.properties.eventDeliverySchema, "EventGridSchema");
    assert.ok(read("functions/aksEvents.ts").includes('app.eventGrid("aksEvents"'));
  });

  it("filters to exactly the event types the function acts on, in the Bicep and in main.json", () => {
    assert.deepEqual([...deployment.properties.template.variables.eventTypes].sort(), [...handledAksEventTypes].sort());
    const bicep = read("infra/modules/aks-events.bicep");
    const listed = [...bicep.split("var eventTypes = [")[1]!.split("]")[0]!.matchAll(/'([^']+)'/g)].map((m) => m[1]);
    assert.deepEqual(listed.sort(), [...handledAksEventTypes].sort());
    assert.match(read("infra/main.bicep"), /module aksEvents 'modules\/aks-events\.bicep'/);
  });
});
