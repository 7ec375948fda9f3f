// Keyward dashboard behaviour. Loaded from /assets (the Content-Security-Policy allows no
// inline script). Everything here is an enhancement of plain forms and links:
// - [data-opens="ID"] opens the <dialog id="ID"> as a modal (focus stays inside it);
// - [data-closes] closes the dialog it is in;
// - <dialog data-open-on-load> opens as a modal when the page (or an htmx swap) loads;
// - <dialog data-return-to="URL"> goes to URL when closed, so the secrets it showed are
//   gone from the page; Escape does not close it, only its button does;
// - [data-copy="ID"] copies the value of the element ID to the clipboard;
// - a form's error summary (#error-summary) takes the focus when the page loads, so a
//   keyboard or screen reader user starts from the list of what to fix (or, on a stale
//   edit, the #conflict notice);
// - the credential form's effective scopes (#effective-scopes) follow the boxes ticked,
//   the scopes typed and the role chosen (the role's scopes are its option's data-scopes).
(function () {
  "use strict";

  function focusErrors() {
    var summary = document.getElementById("error-summary") || document.getElementById("conflict");
    if (summary) {
      summary.focus();
    }
  }
  document.addEventListener("DOMContentLoaded", focusErrors);

  function words(text) {
    return (text || "").split(/[\s,]+/).filter(function (w) {
      return w.length > 0;
    });
  }

  function showEffectiveScopes() {
    var list = document.getElementById("effective-scopes");
    if (!list) {
      return;
    }
    var scopes = {};
    document.querySelectorAll("#scope-picker input[name=scope]:checked").forEach(function (box) {
      scopes[box.value] = true;
    });
    var typed = document.getElementById("scopes");
    words(typed && typed.value).forEach(function (scope) {
      scopes[scope] = true;
    });
    var role = document.getElementById("role");
    var option = role && role.options[role.selectedIndex];
    words(option && option.getAttribute("data-scopes")).forEach(function (scope) {
      scopes[scope] = true;
    });
    var sorted = Object.keys(scopes).sort();
    list.textContent = "";
    sorted.forEach(function (scope) {
      var item = document.createElement("li");
      var code = document.createElement("code");
      code.textContent = scope;
      item.appendChild(code);
      list.appendChild(item);
    });
    var none = document.getElementById("no-effective-scopes");
    if (none) {
      none.hidden = sorted.length > 0;
    }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof Element && target.closest("#scope-picker, #role, #scopes")) {
      showEffectiveScopes();
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target instanceof Element && event.target.id === "scopes") {
      showEffectiveScopes();
    }
  });

  function openOnLoad(root) {
    root.querySelectorAll("dialog[data-open-on-load]").forEach(function (dialog) {
      if (!dialog.open) {
        dialog.showModal();
      }
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var done = document.execCommand("copy");
      document.body.removeChild(area);
      if (done) {
        resolve();
      } else {
        reject(new Error("copy refused"));
      }
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    var opener = target.closest("[data-opens]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-opens"));
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
      }
      return;
    }
    var closer = target.closest("[data-closes]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) {
        event.preventDefault();
        open.close();
      }
      return;
    }
    var copier = target.closest("[data-copy]");
    if (copier) {
      var field = document.getElementById(copier.getAttribute("data-copy"));
      if (!field) {
        return;
      }
      var status = copier.querySelector(".copy-status") || copier;
      copyText(field.value || field.textContent).then(
        function () {
          status.textContent = "Copied";
          copier.setAttribute("data-copied", "true");
        },
        function () {
          field.select();
          status.textContent = "Press Ctrl+C";
        }
      );
    }
  });

  document.addEventListener(
    "cancel",
    function (event) {
      var dialog = event.target;
      if (dialog instanceof HTMLDialogElement && dialog.hasAttribute("data-return-to")) {
        event.preventDefault();
      }
    },
    true
  );

  document.addEventListener(
    "close",
    function (event) {
      var dialog = event.target;
      if (dialog instanceof HTMLDialogElement && dialog.hasAttribute("data-return-to")) {
        window.location.replace(dialog.getAttribute("data-return-to"));
      }
    },
    true
  );

  document.addEventListener("DOMContentLoaded", function () {
    openOnLoad(document);
  });
  document.addEventListener("htmx:load", function (event) {
    openOnLoad(event.target);
  });
})();
