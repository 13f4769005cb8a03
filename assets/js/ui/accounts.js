// A screen of accounts (the administrator's hosts, a host's students): a form for a new one,
// and a table of them with their state and the actions the caller may take.

import { attempt, form, h, notify, view, when } from "../dom.js";

/**
 * @param {{title: string, noun: string, load: () => Promise<any[]>,
 *   create: (username: string, password: string) => Promise<any>,
 *   actions: (user: any, reload: () => Promise<void>) => HTMLElement[], empty: string}} screen
 */
export async function accounts(screen) {
  const show = view();
  const reload = () => accounts(screen);
  const list = await attempt(screen.load);
  if (!list) return show(screen.title);
  const Noun = screen.noun[0].toUpperCase() + screen.noun.slice(1);
  const rows = list.map((user) => h("tr", {},
    h("td", {}, user.username),
    h("td", {}, h("span", { class: user.isActive ? "badge on" : "badge" }, user.isActive ? "active" : "disabled")),
    h("td", {}, when(user.createdAt)),
    h("td", { class: "actions" }, screen.actions(user, reload))));
  show(screen.title,
    h("h2", {}, `New ${screen.noun}`),
    form(`New ${screen.noun}`, [["username", "Username"], ["password", "Password", "password", { autocomplete: "new-password" }]],
      `Create ${screen.noun}`, (v) => attempt(async () => {
        await screen.create(v.username, v.password);
        notify(`${Noun} ${v.username} is created.`);
        await reload();
      }), "inline"),
    list.length
      ? h("table", {}, h("caption", { class: "muted-text" }, `${list.length} ${screen.noun}s`),
        h("thead", {}, h("tr", {}, [Noun, "State", "Created", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))
      : h("p", {}, screen.empty));
}

/** The button that disables or enables `user` with `update(id, fields)`. */
export function toggle(user, update, reload) {
  return h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => {
    await update(user._id, { isActive: !user.isActive });
    notify(`${user.username} is ${user.isActive ? "disabled" : "enabled"}.`);
    await reload();
  }) }, user.isActive ? `Disable ${user.username}` : `Enable ${user.username}`);
}
