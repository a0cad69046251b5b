import streamlit as st

st.title("Hello from Streamlit")
st.write("Served by Atrium Connect.")
