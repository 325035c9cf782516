// Does not handle its errors.
onmessage = function () {
  throw new Error('not handled');
};
