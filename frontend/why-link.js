// Points the page's "Why these songs?" link at the map of the emotion and strategy the list is for.
const link = document.getElementById("why-link");
link.addEventListener("click", () => {
  const emotion = document.getElementById("tracks-for").dataset.emotion || "neutral";
  const pressed = document.querySelector("#strategy-picker [aria-pressed='true']");
  const strategy = pressed ? pressed.dataset.strategy : "match";
  link.href = `why.html?${new URLSearchParams({ emotion, strategy })}`;
});
