// login — the login page; on success the router sends the user to the
// team or instructor view by role.
import { h, add } from './lib/dom.js';
import { t } from './lib/i18n.js';
import { api } from './lib/api.js';

export function render(ctx) {
  const msg = h('div', { class: 'form-msg', role: 'alert' });
  const name = h('input', { name: 'name', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { class: 'btn btn-primary', type: 'submit' }, t('login.submit'));
  const form = h('form', {
    class: 'card login',
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      msg.textContent = '';
      try {
        const ans = await api.post('/api/login', { name: name.value.trim(), password: password.value });
        await ctx.loggedIn(ans);
      } catch (err) {
        if (err.status === 401) msg.textContent = t('login.bad');
        else if (err.status === 429) msg.textContent = t('login.rate_limited', { s: err.retryAfter || 30 });
        else msg.textContent = t('error.network');
        msg.className = 'form-msg alert alert-error';
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', {}, t('login.title')),
  h('p', { class: 'muted' }, t('login.intro')),
  h('label', {}, t('login.name'), name),
  h('label', {}, t('login.password'), password),
  button, msg);
  add(ctx.el, form);
}
