// The page of `detente serve`: start a game, then send answers and show the state the server returns.
// Every text from the server (the game's, the opponent's, the person's own) goes in with textContent.
(function () {
  "use strict";
  const $ = function (id) { return document.getElementById(id); };
  let current = null;  // the game's id: the token in /play/<id>

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function num(x) { return (Math.round(x * 100) / 100).toString(); }

  async function call(method, url, body) {
    const options = { method: method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (!response.ok) throw new Error(data && data.error ? data.error : "the server answered " + response.status);
    return data;
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  function busy(on, who) {
    $("send").disabled = on;
    $("start-button").disabled = on;
    $("waiting").textContent = on ? "waiting for " + who + "\u2026" : "";
    $("waiting").hidden = !on;
  }

  function render(state) {
    current = state.id;
    $("start").hidden = true;
    $("play").hidden = false;
    $("title").textContent = state.game + ": you (seat " + state.seat + ") against " + state.opponent;
    $("score").textContent = "Score: you " + num(state.score[0]) + ", " + state.opponent + " " + num(state.score[1]);
    const log = $("log");
    log.textContent = "";
    for (const line of state.log) {
      const item = el("li", line.who);
      item.appendChild(el("span", "who", line.who === "you" ? "you, round " + line.round : "round " + line.round));
      item.appendChild(el("pre", "text", line.text));
      log.appendChild(item);
    }
    const form = $("answer");
    form.hidden = state.turn === null;
    if (state.turn !== null) {
      $("hint").textContent = state.turn.hint;
      showError($("refused"), state.turn.refused ? "Not accepted: " + state.turn.refused : "");
    }
    $("them-head").textContent = state.opponent;
    const body = $("rounds").querySelector("tbody");
    body.textContent = "";
    for (const round of state.rounds) {
      const row = el("tr");
      [String(round.round), round.you.join(" / "), round.them.join(" / "), num(round.points[0]), num(round.points[1])]
        .forEach(function (text) { row.appendChild(el("td", "", text)); });
      body.appendChild(row);
    }
    $("rounds").hidden = state.rounds.length === 0;
    $("result").hidden = !state.done;
    if (state.done) {
      const [mine, theirs] = state.score;
      const verdict = mine > theirs ? "you scored more" : mine < theirs ? state.opponent + " scored more" : "a draw";
      $("final").textContent = "Final score: you " + num(mine) + ", " + state.opponent + " " + num(theirs) + " (" + verdict + ")";
      $("saved").textContent = state.saved ? "Saved in " + state.saved + " (detente report shows it)." : "";
    } else {
      $("text").focus();
    }
  }

  $("game").addEventListener("change", function () {
    $("against").setAttribute("list", "agents-" + $("game").value);
  });

  $("new-game").addEventListener("submit", async function (event) {
    event.preventDefault();
    showError($("start-error"), "");
    const rounds = $("n-rounds").value;
    const body = { game: $("game").value, against: $("against").value.trim(), seat: Number($("seat").value),
                   n_rounds: rounds ? Number(rounds) : null };
    busy(true, body.against);
    try {
      const state = await call("POST", "/api/games", body);
      history.pushState(null, "", "/play/" + encodeURIComponent(state.id));
      render(state);
    } catch (error) {
      showError($("start-error"), error.message);
    } finally {
      busy(false);
    }
  });

  $("answer").addEventListener("submit", async function (event) {
    event.preventDefault();
    const input = $("text");
    busy(true, "the other player");
    try {
      const state = await call("POST", "/api/games/" + encodeURIComponent(current) + "/answer", { text: input.value });
      if (!state.turn || !state.turn.refused) input.value = "";
      render(state);
    } catch (error) {
      showError($("refused"), error.message);
    } finally {
      busy(false);
    }
  });

  const path = location.pathname.match(/^\/play\/([A-Za-z0-9_-]+)$/);
  if (path) {
    call("GET", "/api/games/" + path[1]).then(render, function (error) { showError($("start-error"), error.message); });
  }
})();
