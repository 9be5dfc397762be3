/**
 * Reading infra/main.json the way ARM evaluates the parts the tests need. The app settings resource
 * is `[union(variables(…), …, createObject('NAME', value, …))]`: ARM variables cannot call
 * reference(), so the settings that come from deployed resources sit in the createObject.
 */

type Json = Record<string, any>;

/** The top-level comma-separated arguments of `name(…)` starting at `at` in an ARM expression. */
function argumentsOf(expression: string, at: number): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = expression.indexOf("(", at) + 1;
  for (let i = start; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'") {
      if (quoted && expression[i + 1] === "'") i++;
      else quoted = !quoted;
    } else if (!quoted && (c === "(" || c === "[")) depth++;
    else if (!quoted && (c === ")" || c === "]")) {
      if (depth === 0) {
        out.push(expression.slice(start, i).trim());
        return out;
      }
      depth--;
    } else if (!quoted && depth === 0 && c === ",") {
      out.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  throw new Error(`unbalanced expression: ${expression}`);
}

/** The app settings resource's settings: name → value as a template expression (`[…]`) or literal. */
export function appSettingsOf(template: Json): Record<string, string> {
  const resource = template.resources.find((r: Json) => r.type === "Microsoft.Web/sites/config" && String(r.name).includes("appsettings"));
  const expression: string = resource.properties;
  const union = /^\[union\(/.exec(expression);
  if (!union) throw new Error(`the app settings are no longer a union: ${expression.slice(0, 80)}`);
  const settings: Record<string, string> = {};
  for (const part of argumentsOf(expression, 1)) {
    const variable = /^variables\('([^']+)'\)$/.exec(part)?.[1];
    if (variable && typeof template.variables[variable] === "object") Object.assign(settings, template.variables[variable]);
    else if (part.startsWith("createObject(")) {
      const args = argumentsOf(part, 0);
      for (let i = 0; i < args.length; i += 2) {
        const value = args[i + 1]!;
        settings[args[i]!.replace(/^'|'$/g, "")] = /^'[^']*'$/.test(value) ? value.slice(1, -1) : `[${value}]`;
      }
    } else if (!variable) throw new Error(`unexpected part of the app settings: ${part}`);
  }
  return settings;
}
