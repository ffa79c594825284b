/*
 * xmflows pages, progressively enhanced: Copy URL, and in the workflow builder the
 * task cards (add, remove, reorder), condition and embedded-data rows, the {a}
 * dynamic-text menu and the message preview.
 *
 * Every button that changes the form is also a submit button the server handles
 * ("add_task:…", "remove_rule:3"), so the page works without this script; here the
 * same change happens in place. The server orders cards and rows by where their
 * index first appears in the post, so moving a card is moving its element, and a new
 * card only needs an index no other card has. No library, no build step.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // --- Copy URL (workflow page and builder) -------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var field = document.getElementById(button.dataset.copyTarget);
    var status = document.getElementById("copy-status");
    var done = function () { if (status) status.textContent = "Copied to the clipboard"; };
    var fallback = function () {
      field.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      if (ok) done(); else if (status) status.textContent = "Select the URL and copy it (Ctrl+C)";
    };
    if (navigator.clipboard && window.isSecureContext !== false) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  });

  var form = document.getElementById("builder");
  if (!form) return;

  // Indexes of cards and rows the server rendered are small; new ones start above.
  var nextIndex = 1000;
  var fresh = function () { nextIndex += 1; return String(nextIndex); };
  var csrf = function () {
    // The cookie first: signing in again (in another tab) replaced it, and the token
    // rendered into the form went stale with it.
    var cookie = document.cookie.split("; ").filter(function (c) { return c.indexOf("csrftoken=") === 0; })[0];
    if (cookie) return cookie.slice("csrftoken=".length);
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  };

  function reveal(root) {
    root.querySelectorAll("button.dyn, [data-action=preview]").forEach(function (b) { b.hidden = false; });
    root.querySelectorAll("article.task").forEach(showChannel);
    if (root.matches && root.matches("article.task")) showChannel(root);
    root.querySelectorAll("fieldset[data-follow-up]").forEach(showFollowUp);
    root.querySelectorAll("select[data-role=rule-op]").forEach(showRuleValue);
    if (root.matches && root.matches("tr.rule")) showRuleValue(root.querySelector("select[data-role=rule-op]"));
  }

  // "is empty" and "is not empty" take no value: its box is disabled (and so not sent),
  // not left to collect text the server would drop.
  var UNARY = ["is_empty", "is_not_empty"];
  function showRuleValue(select) {
    if (!select || select.disabled) return;
    var input = select.closest("tr.rule").querySelector("input[data-role=rule-value]");
    if (!input) return;
    var unary = UNARY.indexOf(select.value) !== -1;
    input.disabled = unary;
    input.placeholder = unary ? "(no value)" : "true";
  }

  // The mapping's heading and help follow the add-to-directory mode.
  function showMode(card) {
    var select = card.querySelector("select[name$='.mode']");
    if (!select) return;
    card.querySelectorAll("[data-mode-text]").forEach(function (text) {
      text.hidden = (text.dataset.modeText === "transaction") !== (select.value === "transaction");
    });
  }

  // A follow-up's inputs show while its box is ticked (all show without the script).
  function showFollowUp(fieldset) {
    var box = fieldset.querySelector("legend input[type=checkbox]");
    var body = fieldset.querySelector("[data-follow-up-body]");
    if (box && body) body.hidden = !box.checked;
  }

  function fromTemplate(id, replacements) {
    var source = document.getElementById(id);
    if (!source) return null;
    var html = source.innerHTML;
    Object.keys(replacements).forEach(function (key) { html = html.split(key).join(replacements[key]); });
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    var element = holder.content.firstElementChild;
    reveal(element);
    return element;
  }

  function renumber() {
    form.querySelectorAll("[data-task-list] > article.task").forEach(function (card, index) {
      var number = card.querySelector(".task-number");
      if (number) number.textContent = String(index + 1);
    });
  }

  function focusFirst(element) {
    var input = element.querySelector("input:not([type=hidden]), select, textarea");
    if (input) input.focus();
  }

  // Email or SMS fields, by the card's channel.
  function showChannel(card) {
    var select = card.querySelector("select[data-role=channel]");
    if (!select) return;
    var sms = select.value === "sms" || select.value === "sms_survey";
    card.querySelectorAll("[data-channel-group]").forEach(function (group) {
      group.hidden = (group.dataset.channelGroup === "sms") !== sms;
    });
    // A text goes to the phone: it, not the email, is then required (as on save).
    markRequired(card, "email", !sms);
    markRequired(card, "phone", sms);
  }

  function markRequired(card, key, required) {
    var input = card.querySelector('[name$=".contact.' + key + '"]');
    var label = input && card.querySelector('label[for="' + input.id + '"]');
    if (!label) return;
    var star = label.querySelector("abbr.required");
    if (required && !star) {
      star = document.createElement("abbr");
      star.className = "required";
      star.title = "required";
      star.textContent = "*";
      label.appendChild(document.createTextNode(" "));
      label.appendChild(star);
    } else if (!required && star) {
      // Only the space before the star goes: that text node also holds the label.
      var before = star.previousSibling;
      if (before && before.nodeType === 3) before.textContent = before.textContent.replace(/\s+$/, "");
      star.remove();
    }
  }

  var actions = {
    "add-task": function (button) {
      var card = fromTemplate("task-template-" + button.dataset.taskType, { "__T__": fresh() });
      if (!card) return;
      form.querySelector("[data-task-list]").appendChild(card);
      renumber();
      focusFirst(card);
    },
    "remove-task": function (button) {
      button.closest("article.task").remove();
      renumber();
    },
    "move-up": function (button) {
      var card = button.closest("article.task");
      var previous = card.previousElementSibling;
      if (previous) card.parentNode.insertBefore(card, previous);
      renumber();
      button.focus();
    },
    "move-down": function (button) {
      var card = button.closest("article.task");
      var next = card.nextElementSibling;
      if (next) card.parentNode.insertBefore(next, card);
      renumber();
      button.focus();
    },
    "add-rule": function () {
      var row = fromTemplate("rule-template", { "__R__": fresh() });
      form.querySelector("[data-rule-rows]").appendChild(row);
      focusFirst(row);
    },
    "remove-rule": function (button) { button.closest("tr").remove(); },
    "add-embedded": function (button) {
      var card = button.closest("article.task");
      var row = fromTemplate("embedded-row-template", {
        "__T__": card.dataset.taskKey,
        "__R__": fresh()
      });
      card.querySelector("[data-embedded-rows]").appendChild(row);
      focusFirst(row);
    },
    "remove-embedded": function (button) { button.closest("tr").remove(); },
    "preview": function (button) { preview(button.closest("article.task")); }
  };

  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button || !actions[button.dataset.action]) return;
    event.preventDefault();
    actions[button.dataset.action](button);
  });
  form.addEventListener("change", function (event) {
    if (event.target.matches("select[data-role=channel]")) showChannel(event.target.closest("article.task"));
    if (event.target.matches("fieldset[data-follow-up] legend input")) showFollowUp(event.target.closest("fieldset"));
    if (event.target.matches("select[name$='.mode']")) showMode(event.target.closest("article.task"));
    if (event.target.matches("select[data-role=rule-op]")) showRuleValue(event.target);
  });
  reveal(form);

  // --- The {a} dynamic-text menu ------------------------------------------------------
  var menu = document.getElementById("dyn-menu");
  var menuList = document.getElementById("dyn-menu-list");
  var menuFilter = document.getElementById("dyn-menu-filter");
  var initial = document.getElementById("dynamic-text-menu-data");
  var entries = initial ? JSON.parse(initial.textContent).entries : [];
  var target = null;

  // Where the cursor was in each field: a field never focused gets text at its end.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches("input, textarea")) event.target.dataset.touched = "1";
  });

  function insertAtCursor(input, text) {
    var touched = input.dataset.touched === "1" && typeof input.selectionStart === "number";
    var start = touched ? input.selectionStart : input.value.length;
    var end = touched ? input.selectionEnd : start;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.focus();
    var position = start + text.length;
    input.setSelectionRange(position, position);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function menuQuery() {
    var names = function (selector) {
      return Array.prototype.map.call(form.querySelectorAll(selector), function (el) { return el.value.trim(); })
        .filter(Boolean);
    };
    var fields = (form.elements["event.fields"] ? form.elements["event.fields"].value : "")
      .split(/[\s,;]+/).filter(Boolean);
    var params = new URLSearchParams({
      object: form.elements["event.object"] ? form.elements["event.object"].value : "",
      fields: fields.join(","),
      embedded: names("input[name*='.embedded_data.'][name$='.name']").join(","),
      workflow: form.dataset.workflow || ""
    });
    return form.dataset.menuUrl + "?" + params.toString();
  }

  function renderMenu() {
    var filter = menuFilter.value.trim().toLowerCase();
    menuList.textContent = "";
    var group = null;
    // A contact field or an embedded data value is rendered before the contact is known
    // and without a survey link: its button offers the event's fields only.
    var groups = opener && opener.dataset.groups ? opener.dataset.groups.split(",") : null;
    entries.forEach(function (entry) {
      if (groups && groups.indexOf(entry.group) === -1) return;
      var haystack = (entry.label + " " + entry.placeholder + " " + entry.group).toLowerCase();
      if (filter && haystack.indexOf(filter) === -1) return;
      if (entry.group !== group) {
        group = entry.group;
        var heading = document.createElement("div");
        heading.className = "group";
        heading.textContent = group;
        menuList.appendChild(heading);
      }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "entry";
      button.setAttribute("role", "option");
      button.dataset.placeholder = entry.placeholder;
      var label = document.createElement("span");
      label.textContent = entry.label;
      var code = document.createElement("code");
      code.textContent = entry.placeholder;
      button.appendChild(label);
      button.appendChild(code);
      menuList.appendChild(button);
    });
    if (!menuList.firstChild) {
      var empty = document.createElement("p");
      empty.className = "help";
      empty.textContent = "Nothing matches.";
      menuList.appendChild(empty);
    }
  }

  var opener = null;  // the {a} button that opened the menu

  function openMenu(button) {
    if (opener) opener.setAttribute("aria-expanded", "false");
    opener = button;
    button.setAttribute("aria-expanded", "true");
    target = document.getElementById(button.dataset.target);
    var rect = button.getBoundingClientRect();
    menu.hidden = false;
    var left = Math.min(rect.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - menu.offsetWidth - 8);
    menu.style.left = Math.max(8, left) + "px";
    menu.style.top = (rect.bottom + window.scrollY + 4) + "px";
    menuFilter.value = "";
    renderMenu();
    menuFilter.focus();
    // The form may have changed (object, fields, embedded data rows): ask again.
    fetch(menuQuery(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.entries) { entries = data.entries; if (!menu.hidden) renderMenu(); }
      })
      .catch(function () { /* keep the entries the page came with */ });
  }

  function closeMenu(returnFocus) {
    menu.hidden = true;
    if (opener) opener.setAttribute("aria-expanded", "false");
    if (returnFocus && target) target.focus();
  }

  // The keyboard: arrows move through the entries (from the filter too), Home and End
  // jump, Enter on the filter takes the first match, Escape closes and goes back to
  // the field; leaving the menu by Tab closes it.
  function moveFocus(step, event) {
    var items = Array.prototype.slice.call(menuList.querySelectorAll("button.entry"));
    if (!items.length) return;
    event.preventDefault();
    var at = items.indexOf(document.activeElement);
    var next;
    if (step === "first") next = 0;
    else if (step === "last") next = items.length - 1;
    else if (at === -1) next = step > 0 ? 0 : items.length - 1;
    else next = (at + step + items.length) % items.length;
    items[next].focus();
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button.dyn");
    if (!button) return;
    event.preventDefault();
    if (!menu.hidden && target && target.id === button.dataset.target) { closeMenu(true); return; }
    openMenu(button);
  });
  menuList.addEventListener("click", function (event) {
    var entry = event.target.closest("button.entry");
    if (!entry || !target) return;
    insertAtCursor(target, entry.dataset.placeholder);
    closeMenu(false);
  });
  menuFilter.addEventListener("input", renderMenu);
  menu.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); closeMenu(true); }
    if (event.key === "ArrowDown") moveFocus(1, event);
    if (event.key === "ArrowUp") moveFocus(-1, event);
    if ((event.key === "Home" || event.key === "End") && event.target !== menuFilter) {
      moveFocus(event.key === "Home" ? "first" : "last", event);
    }
    if (event.key === "Enter" && event.target === menuFilter) {
      event.preventDefault();
      var first = menuList.querySelector("button.entry");
      if (first) first.click();
    }
  });
  document.addEventListener("click", function (event) {
    if (!menu.hidden && !menu.contains(event.target) && !event.target.closest("button.dyn")) closeMenu(false);
  });
  menu.addEventListener("focusout", function (event) {
    var next = event.relatedTarget;
    if (!menu.hidden && next && !menu.contains(next) && next !== opener) closeMenu(false);
  });

  // --- Saving after the session ended --------------------------------------------------
  // Signed out in another tab (or by a password change), a post would land on the
  // sign-in page and what was typed here would be lost. So every submit first asks
  // whether the session is alive; if not, the page says so and keeps the work. Once
  // signed in again (in another tab), pressing the button posts, with the CSRF token
  // of the new session. Without fetch or requestSubmit, the form posts as it always did.
  var sessionChecked = false;
  var checking = false;  // a click while the check runs is the same click: one post
  form.addEventListener("submit", function (event) {
    if (sessionChecked || !form.dataset.sessionUrl || !window.fetch || !form.requestSubmit) {
      sessionChecked = false;
      return;
    }
    event.preventDefault();
    if (checking) return;
    checking = true;
    var submitter = event.submitter || null;
    var resubmit = function () {
      checking = false;
      sessionChecked = true;
      if (submitter) form.requestSubmit(submitter); else form.requestSubmit();
    };
    // A check that hangs must not keep the work from being saved: after 5 s, post.
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, 5000) : null;
    fetch(form.dataset.sessionUrl, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
      signal: controller ? controller.signal : undefined
    })
      .finally(function () { if (timer) clearTimeout(timer); })
      .then(function (response) { return response.json(); })
      .then(function (state) {
        if (!state.signed_in) { checking = false; signedOut(state.sign_in_url); return; }
        var token = form.querySelector("input[name=csrfmiddlewaretoken]");
        if (token && state.csrf_token) token.value = state.csrf_token;
        var notice = document.getElementById("signed-out");
        if (notice) notice.remove();
        resubmit();
      })
      // The check itself failed (network, server): post as before, nothing is hidden.
      .catch(resubmit);
  });

  function signedOut(signInUrl) {
    var notice = document.getElementById("signed-out");
    if (!notice) {
      notice = document.createElement("div");
      notice.id = "signed-out";
      notice.className = "error-summary";
      notice.setAttribute("role", "alert");
      notice.tabIndex = -1;
      var p = document.createElement("p");
      var strong = document.createElement("strong");
      strong.textContent = "Not saved: you are signed out. ";
      p.appendChild(strong);
      p.appendChild(document.createTextNode(
        "Your changes are still on this page. "));
      var link = document.createElement("a");
      link.href = signInUrl || "/accounts/login/";
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = "Sign in in a new tab";
      p.appendChild(link);
      p.appendChild(document.createTextNode(
        ", then come back to this tab and press the button again."));
      notice.appendChild(p);
      form.parentNode.insertBefore(notice, form);
    }
    notice.focus();
  }

  // --- Message preview ------------------------------------------------------------------
  function preview(card) {
    var panel = card.querySelector("[data-preview]");
    var output = panel.querySelector("[data-preview-output]");
    var run = panel.querySelector("[data-preview-run]").value;
    var prefix = "tasks." + card.dataset.taskKey + ".";
    var body = { run: run, contact: {}, embedded_data: {}, message: {} };
    card.querySelectorAll("[name^='" + prefix + "contact.']").forEach(function (el) {
      body.contact[el.name.slice((prefix + "contact.").length)] = el.value;
    });
    card.querySelectorAll("tr.embedded-row").forEach(function (row) {
      var name = row.querySelector("input[name$='.name']").value;
      if (name.trim()) body.embedded_data[name] = row.querySelector("input[name$='.value']").value;
    });
    var channel = card.querySelector("select[data-role=channel]");
    var sms = channel && (channel.value === "sms" || channel.value === "sms_survey");
    (sms ? ["text"] : ["from_name", "subject", "body"]).forEach(function (key) {
      var field = card.querySelector("[name='" + prefix + "message." + key + "']");
      if (field) body.message[key] = field.value;
    });
    output.textContent = "Rendering…";
    fetch(form.dataset.previewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf(), Accept: "application/json" },
      body: JSON.stringify(body)
    })
      .then(function (response) {
        // Signed out, the post is sent on to the sign-in page, an HTML page.
        if (response.redirected) return { error: "you are signed out; sign in in a new tab, then preview again" };
        return response.json();
      })
      .then(function (data) { showPreview(output, data, sms); })
      .catch(function () { output.textContent = "The preview could not be loaded."; });
  }

  function line(parent, label, text) {
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = label + ": ";
    p.appendChild(strong);
    p.appendChild(document.createTextNode(text));
    parent.appendChild(p);
  }

  function showPreview(output, data, sms) {
    output.textContent = "";
    if (data.error) { line(output, "Cannot preview", data.error); return; }
    var message = data.message || {};
    line(output, "For", (data.contact.FirstName + " " + data.contact.LastName).trim() +
      " <" + (sms ? data.contact.PhoneNumber : data.contact.Email) + ">");
    if (sms) {
      var pre = document.createElement("pre");
      pre.className = "preview-text";
      pre.textContent = message.text || "";
      output.appendChild(pre);
    } else {
      if (message.from_name) line(output, "From", message.from_name);
      line(output, "Subject", message.subject || "");
      var frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "");  // the admin's HTML, shown without scripts
      frame.setAttribute("title", "Rendered message");
      frame.srcdoc = message.body || "";
      output.appendChild(frame);
    }
    if (data.warnings && data.warnings.length) {
      var list = document.createElement("ul");
      list.className = "warnings";
      data.warnings.forEach(function (warning) {
        var item = document.createElement("li");
        item.textContent = warning;
        list.appendChild(item);
      });
      output.appendChild(list);
    }
  }
})();
