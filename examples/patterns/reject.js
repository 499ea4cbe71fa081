// The e2e test expects these line numbers: the Error at line 5, the throw at line 9.
function loadStock() {
  return fetch("data:,").then(function () {
    return Promise.reject(
      new Error("stock service unavailable"));
  });
}
async function pay() {
  await null; throw new TypeError("card declined");
}
function show(text) {
  document.getElementById("status").textContent = text;
}
document.getElementById("stock").addEventListener("click", function () {
  loadStock();
  show("Checking stock");
});
document.getElementById("pay").addEventListener("click", function () {
  pay();
  show("Paying");
});
document.getElementById("plain").addEventListener("click", function () {
  Promise.reject("no reason given");
  show("Rejected");
});
